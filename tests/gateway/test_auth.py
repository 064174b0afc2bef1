"""Credentials: the keys file, constant-time comparison, session cookies, where keys are read."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import pytest

from phoenix_common.errors import InvalidInput
from phoenix_gateway import auth
from phoenix_gateway.auth import (
    ApiKeys,
    Authenticator,
    Credential,
    KeysFile,
    SessionTokens,
    find_credential,
)
from phoenix_gateway.observability import RedactTokens
from phoenix_gateway.settings import GatewaySettings

KEY_1 = "k1-aaaaaaaaaaaaaaaaaaaaaaaa"
KEY_2 = "k2-bbbbbbbbbbbbbbbbbbbbbbbb"
KEY_3 = "k3-cccccccccccccccccccccccc"


def test_keys_file_accepts_json_and_yaml_with_one_or_many_keys(tmp_path: Path) -> None:
    as_json = tmp_path / "keys.json"
    as_json.write_text(f'{{"twin-a": "{KEY_1}", "twin-b": ["{KEY_2}", "{KEY_3}"]}}')
    as_yaml = tmp_path / "keys.yaml"
    as_yaml.write_text(f"twin-a: {KEY_1}\ntwin-b:\n  - {KEY_2}\n  - {KEY_3}\n")
    for path in (as_json, as_yaml):
        keys = ApiKeys.load(path)
        assert keys.twins == ["twin-a", "twin-b"]
        assert [keys.twin_for(k) for k in (KEY_1, KEY_2, KEY_3)] == ["twin-a", "twin-b", "twin-b"]
        assert keys.twin_for(KEY_1 + "x") is None
        assert keys.twin_for("") is None


def test_a_mounted_secret_directory_gives_one_twin_per_file(tmp_path: Path) -> None:
    mounted = tmp_path / "keys"
    data = tmp_path / "keys" / "..2026_11_24"
    data.mkdir(parents=True)
    (data / "aegis").write_text(KEY_1 + "\n")
    (data / "sentinel").write_text(f"{KEY_2}\n{KEY_3}\n")
    # The layout kubelet writes: visible names are symlinks through ..data.
    (mounted / "..data").symlink_to(data.name)
    for twin in ("aegis", "sentinel"):
        (mounted / twin).symlink_to(f"..data/{twin}")
    keys = ApiKeys.load(mounted)
    assert keys.twins == ["aegis", "sentinel"]
    assert [keys.twin_for(k) for k in (KEY_1, KEY_2, KEY_3)] == ["aegis", "sentinel", "sentinel"]
    assert keys.twin_for("not-a-key-at-all-really") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "non-empty mapping"),
        ("{}", "non-empty mapping"),
        ('{"twin-a": []}', "twin 'twin-a' needs a key"),
        ('{"twin-a": "short"}', "at least 16 characters"),
        ('{"twin-a": 12345678901234567890}', "needs a key"),
        ('{"twin-a": [12345678901234567890]}', "at least 16 characters"),
    ],
)
def test_a_broken_keys_file_is_refused_with_a_message_without_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message) as err:
        ApiKeys.load(path)
    assert "short" not in str(err.value).replace("'short'", "")


def test_keys_are_compared_in_constant_time_against_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = ApiKeys({"twin-a": [KEY_1], "twin-b": [KEY_2, KEY_3]})
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert keys.twin_for(KEY_1) == "twin-a"
    # Every configured key is compared (no early exit on a match), each as a SHA-256 digest.
    assert len(calls) == 3
    assert all(len(a) == len(b) == 32 for a, b in calls)


def test_keys_are_not_kept_in_clear() -> None:
    keys = ApiKeys({"twin-a": [KEY_1]})
    assert KEY_1 not in repr(vars(keys))


def test_session_tokens_are_signed_and_expire() -> None:
    sessions = SessionTokens(ttl_seconds=60)
    token = sessions.issue("twin-a", now=1000)
    assert sessions.twin_for(token, now=1030) == "twin-a"
    assert sessions.twin_for(token, now=1061) is None
    forged = SessionTokens().issue("twin-a", now=1000)
    assert sessions.twin_for(forged, now=1030) is None
    twin, expiry, mac = token.split(".")
    assert sessions.twin_for(f"{twin}.{int(expiry) + 999}.{mac}", now=1030) is None
    assert sessions.twin_for("garbage", now=1030) is None


async def test_cookies_hold_session_tokens_not_api_keys() -> None:
    authenticator = Authenticator(ApiKeys({"twin-a": [KEY_1]}), None)
    assert await authenticator.authenticate(Credential(KEY_1, "cookie")) is None
    token = authenticator.sessions.issue("twin-a")
    principal = await authenticator.authenticate(Credential(token, "cookie"))
    assert principal is not None
    assert (principal.twin_id, principal.method) == ("twin-a", "session")


def test_credentials_are_read_from_bearer_then_x_api_key_then_query_then_cookie() -> None:
    assert find_credential({"authorization": "Bearer a"}, {"token": "c"}, {}) == Credential(
        "a", "header"
    )
    assert find_credential({"x-api-key": "b"}, {"token": "c"}, {}) == Credential("b", "header")
    assert find_credential({}, {"token": "c"}, {auth.COOKIE_NAME: "d"}) == Credential("c", "query")
    assert find_credential({}, {}, {auth.COOKIE_NAME: "d"}) == Credential("d", "cookie")
    assert find_credential({"authorization": "Basic xyz"}, {}, {}) is None


def test_the_gateway_refuses_to_start_without_any_authentication() -> None:
    with pytest.raises(ValueError, match="GATEWAY_API_KEYS_FILE"):
        GatewaySettings(_env_file=None, log_format="text")


def test_upstream_urls_lose_trailing_slashes(tmp_path: Path) -> None:
    settings = GatewaySettings(
        api_keys_file=tmp_path / "k",
        orchestrator_url="http://orch:8182//",
        telemetry_url="http://tel:8183/",
    )
    assert (settings.orchestrator_url, settings.telemetry_url) == (
        "http://orch:8182",
        "http://tel:8183",
    )


def test_a_rotated_keys_file_is_picked_up_and_a_broken_one_ignored(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(f'{{"twin-a": "{KEY_1}"}}')
    keys_file = KeysFile(path, check_seconds=0)
    assert keys_file.current().twin_for(KEY_1) == "twin-a"
    path.write_text(f'{{"twin-a": "{KEY_2}"}}')
    assert keys_file.current().twin_for(KEY_1) is None
    assert keys_file.current().twin_for(KEY_2) == "twin-a"
    path.write_text("{not: [valid")
    assert keys_file.current().twin_for(KEY_2) == "twin-a"


def test_tokens_in_logged_urls_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.error.test")
    caplog.handler.addFilter(RedactTokens())
    with caplog.at_level(logging.INFO):
        logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws/chat/t?token={KEY_1}")
        logger.info("GET /v1/telemetry/stream?x=1&token=%s&y=2", KEY_2)
    assert KEY_1 not in caplog.text
    assert KEY_2 not in caplog.text
    assert "/ws/chat/t?token=[redacted]" in caplog.text
    assert "&token=[redacted]&y=2" in caplog.text
