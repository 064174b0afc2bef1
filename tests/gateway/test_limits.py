"""Edge limits per credential (phoenix_gateway.limits): rate, body size, frame size, sockets.

Each against a real gateway (uvicorn on 127.0.0.1) in front of the fake orchestrator;
the rate tests use 1 per minute, so a burst is spent for a minute whatever the
machine's speed, and a closed socket's slot is waited for (it is released when the
server's handler returns, just after the close handshake the client saw).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from phoenix_gateway.app import create_app
from phoenix_gateway.limits import MAX_BUCKETS, RateLimiter, SocketCounter
from phoenix_gateway.settings import GatewaySettings
from tests.gateway.conftest import KEY_A, KEY_B
from tests.gateway.servers import FakeOrchestrator, fake_telemetry_app, serve


def limited(transport: str, limit: str) -> float:
    value = REGISTRY.get_sample_value(
        "phoenix_gateway_limited_total", {"transport": transport, "limit": limit}
    )
    return value or 0.0


@asynccontextmanager
async def gateway_with(
    settings_for: Callable[..., GatewaySettings], **limits: Any
) -> AsyncIterator[str]:
    orchestrator = FakeOrchestrator()
    async with (
        serve(orchestrator.app()) as orchestrator_url,
        serve(fake_telemetry_app(events=1, interval=0.1, pause=0.1)) as telemetry_url,
    ):
        settings = settings_for(
            orchestrator_url=orchestrator_url, telemetry_url=telemetry_url, **limits
        )
        async with serve(create_app(settings)) as url:
            yield url


def frame(message: str) -> str:
    return json.dumps({"session_id": "s-1", "user_id": "twin-a", "message": message})


# -- the pieces --------------------------------------------------------------------------


def test_a_bucket_refills_at_its_rate_and_never_beyond_its_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.take("k"), limiter.take("k")] == [0.0, 0.0]
    assert limiter.take("k") == pytest.approx(1.0)
    assert limiter.take("other") == 0.0  # per key
    now[0] = 0.5
    assert limiter.take("k") == pytest.approx(0.5)
    now[0] = 100.0  # long quiet: back to the burst, not 100 tokens
    assert [limiter.take("k") for _ in range(3)][2] > 0


def test_idle_buckets_are_forgotten_when_there_are_too_many() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: now[0])
    for n in range(MAX_BUCKETS):
        limiter.take(f"k{n}")
    now[0] = 5.0  # every bucket has refilled
    limiter.take("newcomer")
    assert list(limiter.buckets) == ["newcomer"]


def test_a_flood_of_new_keys_keeps_the_table_bounded_and_the_newest() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: 0.0)  # nothing refills
    for n in range(3 * MAX_BUCKETS):
        limiter.take(f"k{n}")
    assert len(limiter.buckets) <= MAX_BUCKETS
    newest = f"k{3 * MAX_BUCKETS - 1}"
    assert limiter.take(newest) > 0, "a recent key keeps its spent bucket"


def test_zero_turns_the_rate_limit_off() -> None:
    limiter = RateLimiter(per_minute=0, burst=1)
    assert all(limiter.take("k") == 0.0 for _ in range(1000))


def test_sockets_are_counted_per_key_and_released() -> None:
    sockets = SocketCounter(limit=2)
    assert sockets.acquire("a")
    assert sockets.acquire("a")
    assert not sockets.acquire("a")
    assert sockets.acquire("b")
    sockets.release("a")
    assert sockets.acquire("a")
    for _ in range(2):
        sockets.release("a")
    assert "a" not in sockets.open


# -- HTTP --------------------------------------------------------------------------------


async def test_http_requests_over_the_rate_get_429_per_credential(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    before = limited("http", "rate")
    async with (
        gateway_with(settings_for, rate_limit_per_minute=1, rate_limit_burst=3) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        statuses = [
            (await client.get("/api/whoami", headers={"x-api-key": KEY_A})).status_code
            for _ in range(4)
        ]
        refused = await client.get("/api/whoami", headers={"x-api-key": KEY_A})
        other = await client.get("/api/whoami", headers={"x-api-key": KEY_B})
        health = [(await client.get("/api/health")).status_code for _ in range(10)]
    assert statuses[:3] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == {"detail": "rate limit exceeded"}
    assert int(refused.headers["retry-after"]) >= 1
    assert other.status_code == 200, "another credential has its own bucket"
    assert health == [200] * 10, "probes are not limited"
    assert limited("http", "rate") >= before + 1


async def test_bodies_over_the_limit_get_413_declared_or_chunked(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    before = limited("http", "body")
    headers = {"x-api-key": KEY_A, "content-type": "application/json"}
    big = json.dumps({"message": "x" * 5000}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    async with (
        gateway_with(settings_for, max_body_bytes=4096) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        declared = await client.post("/api/chat", content=big, headers=headers)
        chunked = await client.post("/api/chat", content=chunks(), headers=headers)
        small = await client.post("/api/chat", json={"message": "hello"}, headers=headers)
    assert declared.status_code == 413
    assert declared.json() == {"detail": "request body over 4096 bytes"}
    assert chunked.status_code == 413
    assert small.status_code == 200
    assert limited("http", "body") == before + 2


async def test_a_small_chunked_body_reaches_the_route_whole(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    body = json.dumps({"message": "in pieces"}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4):
            yield body[start : start + 4]

    async with (
        gateway_with(settings_for, max_body_bytes=4096) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        answer = await client.post(
            "/api/chat",
            content=chunks(),
            headers={"x-api-key": KEY_A, "content-type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"] == "I understand you said: 'in pieces'."


# -- WebSocket ---------------------------------------------------------------------------


async def test_an_oversized_frame_gets_an_error_and_the_socket_goes_on(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    before = limited("ws", "frame")
    async with gateway_with(settings_for, ws_max_message_bytes=1024) as url:
        ws_url = url.replace("http://", "ws://") + "/ws/chat/twin-a"
        async with connect(ws_url, additional_headers={"x-api-key": KEY_A}) as ws:
            await ws.send(frame("é" * 600))  # 1200 bytes of UTF-8, 600 characters
            refused = json.loads(await ws.recv())
            await ws.send(frame("small"))
            answered = json.loads(await ws.recv())
    assert refused["type"] == "status_update"
    assert refused["status"] == "error"
    assert "over the limit of 1024" in refused["details"]
    assert answered["type"] == "complete_message"
    assert limited("ws", "frame") == before + 1


async def test_frames_over_the_rate_get_an_error_each(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    before = limited("ws", "rate")
    # The handshake spends one token of the burst of 3: two frames pass, the third not.
    async with gateway_with(settings_for, rate_limit_per_minute=1, rate_limit_burst=3) as url:
        ws_url = url.replace("http://", "ws://") + "/ws/chat/twin-a"
        async with connect(ws_url, additional_headers={"x-api-key": KEY_A}) as ws:
            answers = []
            for n in range(3):
                await ws.send(frame(f"frame {n}"))
                answers.append(json.loads(await ws.recv()))
    assert [a["type"] for a in answers[:2]] == ["complete_message"] * 2
    assert answers[2]["status"] == "error"
    assert answers[2]["details"].startswith("rate limit exceeded: retry in ")
    assert limited("ws", "rate") >= before + 1


async def served_eventually(ws_url: str, headers: dict[str, str]) -> bool:
    for _ in range(100):
        async with connect(ws_url, additional_headers=headers) as ws:
            await ws.send(frame("after one left"))
            try:
                return bool(json.loads(await ws.recv())["type"] == "complete_message")
            except ConnectionClosed:
                await asyncio.sleep(0.1)
    return False


async def test_sockets_over_the_limit_are_closed_with_1013(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    before = limited("ws", "sockets")
    async with gateway_with(settings_for, ws_max_sockets_per_credential=2) as url:
        ws_url = url.replace("http://", "ws://") + "/ws/chat/twin-a"
        headers = {"x-api-key": KEY_A}
        async with connect(ws_url, additional_headers=headers) as first:
            async with connect(ws_url, additional_headers=headers) as second:
                async with connect(ws_url, additional_headers=headers) as third:
                    with pytest.raises(ConnectionClosed) as closed:
                        await third.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1013
                await second.send(frame("still served"))
                assert json.loads(await second.recv())["type"] == "complete_message"
            # One closed: a new socket gets its slot (once the server has let go of it).
            assert await served_eventually(ws_url, headers)
            await first.send(frame("first too"))
            assert json.loads(await first.recv())["type"] == "complete_message"
    assert limited("ws", "sockets") >= before + 1
