"""Who is calling, and for which twin.

Every route but ``/api/health``, ``/metrics`` and the console's static files
needs a credential, found (in this order) in ``Authorization: Bearer``,
``X-API-Key``, the ``token`` query parameter (browsers cannot set headers on a
WebSocket or an EventSource) or the console's HttpOnly cookie. A credential is
either an API key from the keys file, compared in constant time against every
configured key, or a JWT verified against the configured JWKS. Either way it
names exactly one twin, and a request may act for that twin only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from phoenix_common.errors import InvalidInput
from phoenix_gateway.settings import MIN_SESSION_SECRET_LENGTH, GatewaySettings

logger = logging.getLogger(__name__)

COOKIE_NAME = "phoenix_session"
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    """A caller: the twin it acts for and how it proved it.

    ``twin_id`` None is an anonymous caller of the local no-auth mode (see
    ``access``), who acts as whatever twin the request names.
    """

    twin_id: str | None
    method: Literal["api_key", "jwt", "session", "local"]
    source: Literal["header", "query", "cookie"] = "header"
    expires_at: float | None = None  # epoch seconds; a JWT's exp, a session's expiry

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - (time.time() if now is None else now))


@dataclass(frozen=True)
class Credential:
    """A credential as presented, and where it was found."""

    value: str
    source: Literal["header", "query", "cookie"]


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest's time independent of the key length.
    return hashlib.sha256(value.encode()).digest()


class ApiKeys:
    """Twin id -> API keys, loaded from the keys file; keys are held as SHA-256 digests only."""

    def __init__(self, keys: Mapping[str, list[str]]) -> None:
        self._entries: list[tuple[bytes, str]] = [
            (_digest(key), twin) for twin, twin_keys in keys.items() for key in twin_keys
        ]
        self.twins: list[str] = list(keys)

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        """Parse the keys file, or a keys directory.

        A file is JSON or YAML: ``{twin_id: key}`` or ``{twin_id: [key, ...]}``. A
        directory is what a mounted Kubernetes Secret looks like: one file per twin
        id, named after it, holding its key(s), one per line; so the operator can
        hand the gateway a key it never reads itself.
        """
        try:
            if path.is_dir():
                raw: object = {
                    entry.name: [line for line in entry.read_text("utf-8").split() if line]
                    for entry in sorted(path.iterdir())
                    if not entry.name.startswith(".") and entry.is_file()
                }
            else:
                raw = _json_or_yaml(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise InvalidInput(f"GATEWAY_API_KEYS_FILE {path}: cannot read: {err}") from None
        return cls(parse_keys(raw, origin=str(path)))

    def twin_for(self, presented: str) -> str | None:
        """The twin ``presented`` is a key of, or None; every key is compared, in constant time."""
        digest = _digest(presented)
        found: str | None = None
        for key_digest, twin in self._entries:
            if hmac.compare_digest(digest, key_digest) and found is None:
                found = twin
        return found


class KeysFile:
    """The keys file, re-read when it changes (a rotated Kubernetes Secret), checked at most
    every ``check_seconds``; a broken new version is logged and the previous keys kept."""

    def __init__(self, path: Path, check_seconds: float = 5.0) -> None:
        self.path = path
        self._check_seconds = check_seconds
        self._stamp = self._fingerprint()
        self._keys = ApiKeys.load(path)
        self._checked = time.monotonic()

    def _fingerprint(self) -> tuple[tuple[str, int, int, int], ...] | None:
        # A Secret volume swaps a ..data symlink on update, so look at what every
        # entry resolves to, not at the directory itself.
        try:
            entries = sorted(self.path.iterdir()) if self.path.is_dir() else [self.path]
            stats = [(entry.name, entry.stat()) for entry in entries]
        except OSError:
            return None
        return tuple((name, st.st_mtime_ns, st.st_size, st.st_ino) for name, st in stats)

    def current(self) -> ApiKeys:
        now = time.monotonic()
        if now - self._checked >= self._check_seconds:
            self._checked = now
            stamp = self._fingerprint()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._keys = ApiKeys.load(self.path)
                    logger.info("API keys reloaded", extra={"twins": len(self._keys.twins)})
                except InvalidInput as err:
                    logger.warning("keys file rejected; keeping the previous keys: %s", err)
        return self._keys


def _json_or_yaml(text: str) -> object:
    """JSON, else YAML (imported only for a YAML file: the gateway has no other use for it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    import yaml  # noqa: PLC0415

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(str(err)) from None


def parse_keys(raw: object, *, origin: str) -> dict[str, list[str]]:
    """Validate a parsed keys document; the message names the entry, never a key."""
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(f"{origin}: expected a non-empty mapping of twin id to API key(s)")
    keys: dict[str, list[str]] = {}
    for twin, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(twin, str) or not twin:
            raise InvalidInput(f"{origin}: twin ids must be non-empty strings, got {twin!r}")
        if not isinstance(values, list) or not values:
            raise InvalidInput(f"{origin}: twin {twin!r} needs a key or a non-empty list of keys")
        for key in values:
            if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
                raise InvalidInput(
                    f"{origin}: every key of twin {twin!r} must be a string of at least "
                    f"{MIN_KEY_LENGTH} characters"
                )
        keys[twin] = list(values)
    return keys


def session_secret(settings: GatewaySettings) -> bytes | None:
    """The configured session-signing key (GATEWAY_SESSION_SECRET[_FILE]), or None if unset."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path = settings.session_secret_file
    if path is None:
        return None
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise InvalidInput(f"GATEWAY_SESSION_SECRET_FILE {path}: cannot read: {err}") from None
    except UnicodeDecodeError:  # the message would quote the key's bytes
        raise InvalidInput(f"GATEWAY_SESSION_SECRET_FILE {path}: not UTF-8 text") from None
    if len(value) < MIN_SESSION_SECRET_LENGTH:
        raise InvalidInput(
            f"GATEWAY_SESSION_SECRET_FILE {path}: the key must have at least "
            f"{MIN_SESSION_SECRET_LENGTH} characters"
        )
    return value.encode()


class SessionTokens:
    """The console's cookie: ``<twin>.<expiry>.<HMAC>``.

    Signed with the configured secret, so every replica of a gateway accepts the
    others' cookies; without one, with a per-process random secret (``make run``),
    and a gateway restart then signs everyone out. The cookie never carries an API key.
    """

    def __init__(self, ttl_seconds: int = 12 * 3600, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_seconds = ttl_seconds

    def _mac(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, twin: str, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.ttl_seconds)
        twin_b64 = base64.urlsafe_b64encode(twin.encode()).decode().rstrip("=")
        payload = f"{twin_b64}.{expiry}"
        return f"{payload}.{self._mac(payload)}"

    def twin_for(self, token: str, now: float | None = None) -> str | None:
        verified = self.verify(token, now)
        return verified[0] if verified else None

    def verify(self, token: str, now: float | None = None) -> tuple[str, float] | None:
        """(twin, expiry) of a token this process signed and that has not expired, or None."""
        twin_b64, _, rest = token.partition(".")
        expiry, _, mac = rest.partition(".")
        if not hmac.compare_digest(self._mac(f"{twin_b64}.{expiry}"), mac):
            return None
        if not expiry.isdigit() or int(expiry) < (time.time() if now is None else now):
            return None
        try:
            twin = base64.urlsafe_b64decode(twin_b64 + "=" * (-len(twin_b64) % 4)).decode()
        except ValueError:
            return None
        return twin, float(expiry)


class JwtVerifier:
    """Verifies bearer JWTs against a JWKS (fetched and cached by PyJWKClient)."""

    def __init__(
        self, *, jwks_url: str, issuer: str, audience: str | None, twin_claim: str
    ) -> None:
        import jwt  # noqa: PLC0415 - PyJWT and cryptography (~9 MiB) only when JWTs are used

        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self._issuer = issuer
        self._audience = audience
        self._twin_claim = twin_claim

    def _verify(self, token: str) -> tuple[str, float] | None:
        import jwt  # noqa: PLC0415 - loaded by __init__ already

        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=JWT_ALGORITHMS,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iss"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWKClientConnectionError:
            logger.warning("JWKS endpoint unreachable; refusing the token")
            return None
        except jwt.PyJWTError as err:
            logger.info("JWT refused", extra={"reason": type(err).__name__})
            return None
        twin = claims.get(self._twin_claim)
        if not isinstance(twin, str) or not twin:
            return None
        return twin, float(claims["exp"])

    async def verify(self, token: str) -> tuple[str, float] | None:
        """(twin in the claim, expiry) of a valid token, or None (JWKS fetches run off the loop)."""
        return await asyncio.to_thread(self._verify, token)


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("eyJ")


class Authenticator:
    """Turns a presented credential into a Principal, or refuses it (None)."""

    def __init__(
        self,
        api_keys: ApiKeys | KeysFile | None,
        verifier: JwtVerifier | None,
        sessions: SessionTokens | None = None,
    ) -> None:
        self._api_keys = api_keys
        self._verifier = verifier
        self.sessions = sessions or SessionTokens()

    @property
    def api_keys(self) -> ApiKeys | None:
        if isinstance(self._api_keys, KeysFile):
            return self._api_keys.current()
        return self._api_keys

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Authenticator:
        keys = (
            KeysFile(settings.api_keys_file, settings.api_keys_reload_seconds)
            if settings.api_keys_file
            else None
        )
        verifier = None
        if settings.jwt_jwks_url and settings.jwt_issuer:
            verifier = JwtVerifier(
                jwks_url=settings.jwt_jwks_url,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                twin_claim=settings.jwt_twin_claim,
            )
        return cls(keys, verifier, SessionTokens(secret=session_secret(settings)))

    async def authenticate(self, credential: Credential | None) -> Principal | None:
        """The caller behind ``credential``, or None when it is missing or not valid."""
        if credential is None or not credential.value or len(credential.value) > 8192:
            return None
        if credential.source == "cookie":
            session = self.sessions.verify(credential.value)
            return Principal(session[0], "session", "cookie", session[1]) if session else None
        if self._verifier is not None and looks_like_jwt(credential.value):
            verified = await self._verifier.verify(credential.value)
            return (
                Principal(verified[0], "jwt", credential.source, verified[1]) if verified else None
            )
        api_keys = self.api_keys
        twin = api_keys.twin_for(credential.value) if api_keys is not None else None
        return Principal(twin, "api_key", credential.source) if twin else None


def find_credential(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    cookies: Mapping[str, str],
    *,
    allow_query: bool = True,
) -> Credential | None:
    """The first credential presented: Bearer header, X-API-Key, ?token=, then the cookie.

    ``?token=`` is for what a browser cannot give headers (a WebSocket, an
    EventSource); routes whose URLs end up in traces pass ``allow_query=False``.
    """
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credential(value.strip(), "header")
    if headers.get("x-api-key"):
        return Credential(headers["x-api-key"].strip(), "header")
    if allow_query and query.get("token"):
        return Credential(query["token"], "query")
    if cookies.get(COOKIE_NAME):
        return Credential(cookies[COOKIE_NAME], "cookie")
    return None
