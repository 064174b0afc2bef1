"""The console's files, its session cookie, and the loopback-only autologin of `make run`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from phoenix_gateway.app import create_app
from phoenix_gateway.auth import COOKIE_NAME
from phoenix_gateway.settings import GatewaySettings
from tests.gateway.conftest import KEY_A, KEY_B, Gateway
from tests.gateway.servers import FakeOrchestrator, serve


@pytest.fixture
async def autologin_gateway(settings_for: Callable[..., GatewaySettings]) -> AsyncIterator[str]:
    async with serve(FakeOrchestrator().app()) as orchestrator_url:
        settings = settings_for(
            orchestrator_url=orchestrator_url,
            local_console_autologin=True,
            local_console_twin="twin-b",
        )
        async with serve(create_app(settings)) as url:
            yield url


async def test_console_files_need_no_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        index = await client.get("/")
        script = await client.get("/static/console.js")
        style = await client.get("/static/console.css")
    assert index.status_code == 200
    assert "<title>PhoenixTwin console</title>" in index.text
    assert script.status_code == style.status_code == 200
    assert COOKIE_NAME not in index.headers.get("set-cookie", "")


async def test_autologin_sets_an_httponly_cookie_for_loopback_visitors(
    autologin_gateway: str,
) -> None:
    port = autologin_gateway.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=autologin_gateway) as client:
        index = await client.get("/", headers={"Host": f"localhost:{port}"})
        cookie = index.headers["set-cookie"]
        whoami = await client.get("/api/whoami")
    assert f"{COOKIE_NAME}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert KEY_B not in cookie  # a signed session token, never the API key
    assert whoami.json() == {"twin_id": "twin-b", "method": "session", "subject": "local-console"}


async def test_autologin_ignores_a_rebound_host_name(autologin_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=autologin_gateway) as client:
        index = await client.get("/", headers={"Host": "attacker.example:8181"})
    assert "set-cookie" not in index.headers


async def test_login_exchanges_a_key_for_a_cookie_and_logout_clears_it(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        refused = await client.post("/api/session", json={"api_key": "wrong-key-0123456789"})
        login = await client.post("/api/session", json={"api_key": KEY_A})
        whoami = await client.get("/api/whoami")
        await client.delete("/api/session")
        client.cookies.clear()
        after = await client.get("/api/whoami")
    assert refused.status_code == 401
    assert login.json() == {"twin_id": "twin-a"}
    assert whoami.json()["twin_id"] == "twin-a"
    assert after.status_code == 401


async def test_a_session_cookie_does_not_ride_cross_origin_writes(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        await client.post("/api/session", json={"api_key": KEY_A})
        forged = await client.post(
            "/api/chat",
            json={"message": "hi", "session_id": "s"},
            headers={"Origin": "https://attacker.example"},
        )
        same = await client.post(
            "/api/chat",
            json={"message": "hi", "session_id": "s"},
            headers={"Origin": gateway.url},
        )
    assert forged.status_code == 401
    assert same.status_code == 200
    assert len(gateway.orchestrator.chats) == 1
