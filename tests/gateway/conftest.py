"""Fixtures: API keys, a fake orchestrator and telemetry upstream, and a gateway in front."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from phoenix_gateway.app import create_app
from phoenix_gateway.settings import GatewaySettings
from tests.gateway.servers import FakeOrchestrator, fake_telemetry_app, serve

KEY_A = "key-for-twin-a-0123456789abcdef"
KEY_B = "key-for-twin-b-0123456789abcdef"
KEY_B2 = "second-key-for-twin-b-0123456789"


@dataclass
class Gateway:
    """A running gateway and what stands behind it."""

    url: str
    orchestrator: FakeOrchestrator

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"twin-a": KEY_A, "twin-b": [KEY_B, KEY_B2]}))
    return path


@pytest.fixture
def settings_for(keys_file: Path) -> Callable[..., GatewaySettings]:
    def build(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "api_keys_file": keys_file,
            "upstream_timeout_seconds": 1.0,
            "log_format": "text",
        }
        values.update(overrides)
        return GatewaySettings(_env_file=None, **values)  # no developer .env in tests

    return build


@pytest.fixture
async def gateway(settings_for: Callable[..., GatewaySettings]) -> AsyncIterator[Gateway]:
    orchestrator = FakeOrchestrator()
    async with (
        serve(orchestrator.app()) as orchestrator_url,
        serve(fake_telemetry_app(events=8, interval=0.1, pause=1.5)) as telemetry_url,
    ):
        settings = settings_for(
            orchestrator_url=orchestrator_url + "/", telemetry_url=telemetry_url
        )
        async with serve(create_app(settings)) as url:
            yield Gateway(url, orchestrator)
