"""Settings of the gateway (the telemetry producer's are in ``telemetry.settings``).

Variable names are the original system's (``GATEWAY_PORT``, ``ORCHESTRATOR_URL``,
``TELEMETRY_URL``); what the original lacked (authentication, timeouts, CORS)
is prefixed ``GATEWAY_``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from phoenix_common.settings import CommonSettings

S = TypeVar("S", bound=CommonSettings)
MIN_SESSION_SECRET_LENGTH = 32


class GatewaySettings(CommonSettings):
    """What ``phoenix-gateway`` reads from its environment (and ``.env``)."""

    host: str = Field("0.0.0.0", validation_alias="GATEWAY_HOST")  # noqa: S104 - a pod's edge
    port: int = Field(8181, ge=0, le=65535, validation_alias="GATEWAY_PORT")
    orchestrator_url: str = Field("http://127.0.0.1:8182", validation_alias="ORCHESTRATOR_URL")
    telemetry_url: str = Field("http://127.0.0.1:8183", validation_alias="TELEMETRY_URL")
    upstream_timeout_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias="GATEWAY_UPSTREAM_TIMEOUT_SECONDS",
        description="Timeout of one orchestrator call; the telemetry stream has no read timeout.",
    )
    default_namespace: str | None = Field(
        None,
        validation_alias="GATEWAY_DEFAULT_NAMESPACE",
        description="Memory namespace sent when a chat frame names none (unset: orchestrator's).",
    )
    api_keys_file: Path | None = Field(
        None,
        validation_alias="GATEWAY_API_KEYS_FILE",
        description="JSON or YAML mapping twin id -> API key or list of keys; or a directory "
        "(a mounted Secret) with one file per twin id holding its key(s).",
    )
    api_keys_reload_seconds: float = Field(
        5.0,
        ge=0,
        validation_alias="GATEWAY_API_KEYS_RELOAD_SECONDS",
        description="How often the keys file is checked for changes (a rotated Secret).",
    )
    session_secret: SecretStr | None = Field(
        None,
        validation_alias="GATEWAY_SESSION_SECRET",
        description="Key signing the console's session cookies; every replica of one gateway "
        "needs the same one (unset: a random key per process).",
    )
    session_secret_file: Path | None = Field(
        None,
        validation_alias="GATEWAY_SESSION_SECRET_FILE",
        description="File holding that key (a mounted Secret), instead of GATEWAY_SESSION_SECRET.",
    )
    jwt_issuer: str | None = Field(None, validation_alias="GATEWAY_JWT_ISSUER")
    jwt_audience: str | None = Field(None, validation_alias="GATEWAY_JWT_AUDIENCE")
    jwt_jwks_url: str | None = Field(None, validation_alias="GATEWAY_JWT_JWKS_URL")
    jwt_twin_claim: str = Field("twin_id", validation_alias="GATEWAY_JWT_TWIN_CLAIM")
    local_console_autologin: bool = Field(
        False,
        validation_alias="GATEWAY_LOCAL_CONSOLE_AUTOLOGIN",
        description="Set the console's session cookie for loopback visitors (make run only).",
    )
    local_console_twin: str | None = Field(
        None,
        validation_alias="GATEWAY_LOCAL_CONSOLE_TWIN",
        description="Twin the autologin cookie is for; default: the keys file's first twin.",
    )
    ws_max_message_bytes: int = Field(
        1024 * 1024, ge=1024, validation_alias="GATEWAY_WS_MAX_MESSAGE_BYTES"
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        validation_alias="GATEWAY_CORS_ORIGINS",
        description="Comma-separated browser origins (scheme://host[:port]) allowed to call "
        "the gateway from another origin: CORS headers on HTTP routes and the telemetry "
        "stream, and WebSocket and no-auth access from that Origin.",
    )
    local_no_auth: bool = Field(
        False,
        validation_alias="GATEWAY_LOCAL_NO_AUTH",
        description="Serve callers that present no credential (the original's UI) as the "
        "twin they name; refused unless GATEWAY_HOST is a loopback address.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        normalised = []
        for origin in origins:
            parts = urlsplit(origin)
            if origin == "*":
                raise ValueError("'*' is not allowed: list each origin (scheme://host[:port])")
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(f"expected origins like http://localhost:3000, got {origin!r}")
            normalised.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return tuple(normalised)

    @field_validator("orchestrator_url", "telemetry_url")
    @classmethod
    def _trim_trailing_slashes(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _some_authentication(self) -> GatewaySettings:
        if self.local_no_auth and not is_loopback_host(self.host):
            raise ValueError(
                "GATEWAY_LOCAL_NO_AUTH=true serves requests without a credential, so it is "
                "refused unless GATEWAY_HOST is a loopback address (127.0.0.1, ::1 or "
                f"localhost); GATEWAY_HOST is {self.host!r}"
            )
        if self.api_keys_file is None and self.jwt_jwks_url is None and not self.local_no_auth:
            raise ValueError(
                "the gateway authenticates every request: set GATEWAY_API_KEYS_FILE "
                "(twin id -> API key) and/or GATEWAY_JWT_JWKS_URL (or, on a loopback "
                "address only, GATEWAY_LOCAL_NO_AUTH=true)"
            )
        if self.jwt_jwks_url is not None and self.jwt_issuer is None:
            raise ValueError("GATEWAY_JWT_JWKS_URL needs GATEWAY_JWT_ISSUER too")
        if self.session_secret is not None and self.session_secret_file is not None:
            raise ValueError("set GATEWAY_SESSION_SECRET or GATEWAY_SESSION_SECRET_FILE, not both")
        secret = self.session_secret.get_secret_value() if self.session_secret else None
        if secret is not None and len(secret) < MIN_SESSION_SECRET_LENGTH:
            raise ValueError(
                f"GATEWAY_SESSION_SECRET must have at least {MIN_SESSION_SECRET_LENGTH} characters"
            )
        return self


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def from_environment(settings_class: type[S]) -> S:
    """Build ``settings_class`` from the environment and ``.env``, once per process.

    (The cast only tells mypy that every field has a default; without the pydantic
    mypy plugin it reads aliased fields as required ``__init__`` arguments.)
    """
    build = cast("Callable[[], S]", settings_class)
    return build()
