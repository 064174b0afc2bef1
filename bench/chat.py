"""Chat round trip through the gateway's WebSocket vs. calling the orchestrator directly.

Starts the local stack (scripts/run_local.py's launcher, deterministic planner,
free ports, a temporary directory), then in the same run:

- sends ``MESSAGES`` plain chat messages over one WebSocket, one at a time;
- posts the same messages straight to the orchestrator's ``/chat``;
- sends ``PARALLEL_SOCKETS`` x ``MESSAGES_PER_SOCKET`` messages over parallel sockets.

The gateway's overhead is the ratio of its latency to the direct call's. Bounded:
a few hundred messages, about a minute including the stack's start.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import Figure, percentile

MESSAGES = 300
WARMUP = 30
PARALLEL_SOCKETS = 4
MESSAGES_PER_SOCKET = 100
SESSION = "bench"


async def _ws_round_trips(url: str, count: int, twin: str, tag: str) -> list[float]:
    from websockets.asyncio.client import connect

    samples: list[float] = []
    async with connect(url) as ws:
        for index in range(count):
            frame = json.dumps(
                {"session_id": f"{SESSION}-{tag}", "user_id": twin, "message": f"hello {index}"}
            )
            started = time.perf_counter()
            await ws.send(frame)
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("type") == "complete_message":
                    break
                if reply.get("status") == "error":
                    raise RuntimeError(f"gateway error frame: {reply['details']}")
            samples.append(time.perf_counter() - started)
    return samples


async def _direct_round_trips(url: str, count: int, twin: str) -> list[float]:
    samples: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for index in range(count):
            body = {"message": f"hello {index}", "twin_id": twin, "session_id": SESSION}
            started = time.perf_counter()
            reply = await client.post("/chat", json=body, headers={"X-User-ID": twin})
            reply.raise_for_status()
            samples.append(time.perf_counter() - started)
    return samples


async def _measure(gateway_url: str, orchestrator_url: str, key: str, twin: str) -> list[Figure]:
    ws_url = gateway_url.replace("http://", "ws://") + f"/ws/chat/{twin}?token={key}"
    await _ws_round_trips(ws_url, WARMUP, twin, "warmup")
    await _direct_round_trips(orchestrator_url, WARMUP, twin)

    started = time.perf_counter()
    via_gateway = await _ws_round_trips(ws_url, MESSAGES, twin, "serial")
    gateway_seconds = time.perf_counter() - started
    started = time.perf_counter()
    direct = await _direct_round_trips(orchestrator_url, MESSAGES, twin)
    direct_seconds = time.perf_counter() - started

    started = time.perf_counter()
    await asyncio.gather(
        *(
            _ws_round_trips(ws_url, MESSAGES_PER_SOCKET, twin, f"parallel-{n}")
            for n in range(PARALLEL_SOCKETS)
        )
    )
    parallel_rate = PARALLEL_SOCKETS * MESSAGES_PER_SOCKET / (time.perf_counter() - started)

    def ms(samples: list[float], pct: float) -> float:
        return percentile(samples, pct) * 1000

    return [
        Figure(
            "chat",
            "ws round trip p50",
            ms(via_gateway, 50),
            "ms",
            ms(direct, 50),
            "orchestrator /chat direct",
            "overhead < 2x",
        ),
        Figure(
            "chat",
            "ws round trip p99",
            ms(via_gateway, 99),
            "ms",
            ms(direct, 99),
            "orchestrator /chat direct",
            "overhead < 2x",
        ),
        Figure(
            "chat",
            "ws messages/s, 1 socket",
            MESSAGES / gateway_seconds,
            "msg/s",
            MESSAGES / direct_seconds,
            "direct req/s",
            "ratio > 0.5",
        ),
        Figure(
            "chat",
            f"ws messages/s, {PARALLEL_SOCKETS} sockets",
            parallel_rate,
            "msg/s",
            MESSAGES / gateway_seconds,
            "1 socket",
        ),
    ]


def run() -> list[Figure]:
    from scripts.run_local import LocalStack, Ports, StackConfig

    workdir = Path(tempfile.mkdtemp(prefix="phoenix-bench-chat-"))
    workdir.chmod(0o755)  # the tools sandbox below it runs as an unprivileged uid
    config = StackConfig(
        state_dir=workdir / "state",
        ports=Ports.free(),
        cwd=workdir,
        sandbox_dir=workdir / "sandbox",
        env={"LLM_PROVIDER": "mock", "LOG_LEVEL": "warning"},
        output=lambda _: None,
    )
    try:
        with LocalStack(config) as stack:
            return asyncio.run(
                _measure(config.gateway_url, config.orchestrator_url, stack.api_key, config.twin)
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
