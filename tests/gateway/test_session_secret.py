"""A shared session-signing key: every gateway replica accepts the console cookies of the others.

Two Authenticators built from the same settings stand for two gateway Pods of one
twin (the operator mounts one generated Secret into each); without a key each
process signs with its own random one, as `make run` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from phoenix_common.errors import InvalidInput
from phoenix_gateway.auth import Authenticator, Credential
from phoenix_gateway.settings import GatewaySettings

SECRET = "a-session-signing-key-of-43-characters-xyz0"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"twin-a": "key-for-twin-a-0123456789abcdef"}))
    return path


def settings(keys_file: Path, **env: str) -> GatewaySettings:
    return GatewaySettings.model_validate({"GATEWAY_API_KEYS_FILE": str(keys_file), **env})


async def replicas_share_sessions(one: GatewaySettings, other: GatewaySettings) -> bool:
    token = Authenticator.from_settings(one).sessions.issue("twin-a")
    principal = await Authenticator.from_settings(other).authenticate(Credential(token, "cookie"))
    return principal is not None and principal.twin_id == "twin-a"


async def test_replicas_reading_the_mounted_key_accept_each_others_cookies(
    keys_file: Path, tmp_path: Path
) -> None:
    secret_file = tmp_path / "session-key"
    secret_file.write_text(SECRET + "\n")  # a trailing newline, as editors and echo leave
    configured = settings(keys_file, GATEWAY_SESSION_SECRET_FILE=str(secret_file))
    assert await replicas_share_sessions(configured, configured)


async def test_the_key_from_the_environment_and_from_a_file_sign_alike(
    keys_file: Path, tmp_path: Path
) -> None:
    secret_file = tmp_path / "session-key"
    secret_file.write_text(SECRET)
    from_file = settings(keys_file, GATEWAY_SESSION_SECRET_FILE=str(secret_file))
    from_env = settings(keys_file, GATEWAY_SESSION_SECRET=SECRET)
    assert await replicas_share_sessions(from_file, from_env)


async def test_without_a_key_each_process_signs_with_its_own(keys_file: Path) -> None:
    assert not await replicas_share_sessions(settings(keys_file), settings(keys_file))


def test_a_short_or_doubly_configured_key_is_refused(keys_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        settings(keys_file, GATEWAY_SESSION_SECRET="short")
    secret_file = tmp_path / "session-key"
    secret_file.write_text(SECRET)
    with pytest.raises(ValidationError, match="not both"):
        settings(
            keys_file,
            GATEWAY_SESSION_SECRET=SECRET,
            GATEWAY_SESSION_SECRET_FILE=str(secret_file),
        )


def test_an_unreadable_or_short_key_file_stops_startup(keys_file: Path, tmp_path: Path) -> None:
    missing = settings(keys_file, GATEWAY_SESSION_SECRET_FILE=str(tmp_path / "absent"))
    with pytest.raises(InvalidInput, match="cannot read"):
        Authenticator.from_settings(missing)
    short_file = tmp_path / "short"
    short_file.write_text("short\n")
    with pytest.raises(InvalidInput, match="at least 32 characters"):
        Authenticator.from_settings(
            settings(keys_file, GATEWAY_SESSION_SECRET_FILE=str(short_file))
        )
