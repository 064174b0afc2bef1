"""The telemetry producer's SSE payload and the gateway's relay of long streams."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from phoenix_gateway.app import create_app
from phoenix_gateway.settings import GatewaySettings
from phoenix_gateway.telemetry.app import create_app as create_telemetry_app
from phoenix_gateway.telemetry.settings import TelemetryConfigError, TelemetrySettings
from tests.gateway.conftest import KEY_A, Gateway
from tests.gateway.servers import fake_telemetry_app, serve


async def test_producer_emits_the_originals_metrics_events_and_keep_alives() -> None:
    settings = TelemetrySettings(interval_ms=100, keepalive_seconds=0.25, log_format="text")
    lines: list[str] = []
    async with (
        serve(create_telemetry_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=5) as client,
        client.stream("GET", "/v1/telemetry/stream") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            lines.append(line)
            if sum(line.startswith("data:") for line in lines) >= 4 and any(
                line.startswith(": keep-alive") for line in lines
            ):
                break
    events = [line for line in lines if line.startswith("event:")]
    payloads = [
        json.loads(line.removeprefix("data:")) for line in lines if line.startswith("data:")
    ]
    # The loop also ends when the stream does: a producer that stopped early must fail here.
    assert len(payloads) >= 4, lines
    assert any(line.startswith(": keep-alive") for line in lines), lines
    assert set(events) == {"event: metrics"}
    first = payloads[0]
    assert set(first) == {
        "ts_ms",
        "cpu_percent",
        "mem_total",
        "mem_used",
        "mem_free",
        "process_count",
    }
    assert first["mem_free"] == first["mem_total"] - first["mem_used"]
    assert 0 <= first["cpu_percent"] <= 100
    assert first["process_count"] > 1
    assert abs(first["ts_ms"] - time.time() * 1000) < 10_000
    assert [p["ts_ms"] for p in payloads] == sorted(p["ts_ms"] for p in payloads)


async def test_producer_serves_health_and_metrics() -> None:
    settings = TelemetrySettings(log_format="text")
    async with (
        serve(create_telemetry_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        health = await client.get("/health")
        metrics = await client.get("/metrics")
    assert health.json()["status"] == "ok"
    assert "phoenix_gateway_sse_streams" in metrics.text


async def test_the_relay_keeps_a_stream_open_past_the_client_timeout(gateway: Gateway) -> None:
    """The original's 60 s client timeout cut the stream; here it is silent 1.5 s > 1 s."""
    started = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=5) as client,
        client.stream("GET", "/v1/telemetry/stream", headers={"X-API-Key": KEY_A}) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        body = b"".join([chunk async for chunk in stream.aiter_raw()])
    assert time.monotonic() - started > 2.0  # > twice the gateway's 1 s upstream timeout
    assert body.count(b"event: metrics\n") == 8
    assert body.endswith(b'data: {"ts_ms": 7}\n\n')


async def test_the_relay_needs_a_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        reply = await client.get("/v1/telemetry/stream")
    assert reply.status_code == 401


async def test_an_unreachable_telemetry_service_is_502(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    async with (
        serve(fake_telemetry_app(events=1, interval=0)) as orchestrator_url,
        serve(
            create_app(
                settings_for(orchestrator_url=orchestrator_url, telemetry_url="http://127.0.0.1:9")
            )
        ) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY_A}) as client,
    ):
        reply = await client.get("/v1/telemetry/stream")
    assert (reply.status_code, reply.text) == (502, "Telemetry service unavailable")


async def test_the_relay_accepts_a_query_token_for_eventsource(gateway: Gateway) -> None:
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=5) as client,
        client.stream("GET", "/v1/telemetry/stream", params={"token": KEY_A}) as stream,
    ):
        first = await anext(stream.aiter_lines())
    assert stream.status_code == 200
    assert first == "event: metrics"


async def test_the_first_event_comes_at_once_not_after_an_interval() -> None:
    """The original sent its first sample at once; ours waited a whole interval."""
    settings = TelemetrySettings(interval_ms=120_000, log_format="text")
    firsts = []
    async with (
        serve(create_telemetry_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        for _ in range(2):  # a second stream gets the same, latest, sample at once too
            async with (
                asyncio.timeout(30),  # a quarter of the interval: no timing margin needed
                client.stream("GET", "/v1/telemetry/stream") as stream,
            ):
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        firsts.append(json.loads(line.removeprefix("data:")))
                        break
    assert len(firsts) == 2
    assert firsts[0] == firsts[1]


def test_telemetry_settings_read_the_originals_variables() -> None:
    settings = TelemetrySettings.from_environment(
        {"TELEMETRY_PORT": "9183", "TELEMETRY_INTERVAL_MS": "500", "LOG_LEVEL": "WARNING"}
    )
    assert (settings.port, settings.interval_ms, settings.log_level) == (9183, 500, "warning")
    with pytest.raises(TelemetryConfigError) as err:
        TelemetrySettings.from_environment(
            {"TELEMETRY_PORT": "http", "TELEMETRY_INTERVAL_MS": "10", "PHOENIX_LOG_FORMAT": "xml"}
        )
    message = err.value.message()
    assert "TELEMETRY_PORT: Input should be an integer" in message
    assert "TELEMETRY_INTERVAL_MS: Input should be greater than or equal to 50" in message
    assert "PHOENIX_LOG_FORMAT" in message
    assert "http" not in message.replace("phoenix-telemetry", "")  # values are never echoed


@pytest.mark.parametrize(
    ("module", "unwanted"),
    [
        (
            "phoenix_gateway.telemetry.server",
            ("pydantic", "fastapi", "opentelemetry", "prometheus_client"),
        ),
        ("phoenix_gateway.app", ("grpc", "jwt", "yaml", "httpx", "opentelemetry.sdk")),
    ],
)
def test_each_process_imports_only_what_it_needs(module: str, unwanted: tuple[str, ...]) -> None:
    """Import weight is resident memory: the budgets are 32 MiB (telemetry), 64 (gateway)."""
    probe = f"import sys, {module}; print(' '.join(m for m in {unwanted!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
