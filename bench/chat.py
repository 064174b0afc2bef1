"""Chat round trip and per-process memory: our gateway and orchestrator against floors.

Starts the orchestrator (deterministic planner), the telemetry producer and the
gateway with scripts/run_local.py's launcher, plus three floors on the same
server stack (bench/chat_floors.py): a WebSocket echo, an HTTP echo, and a
WebSocket that makes one HTTP hop to that echo per frame. The same client then
sends plain chat messages, one at a time, over one open WebSocket per path,
interleaved in blocks of ``BLOCK`` so machine load hits every path alike:

- ``ours``: gateway WebSocket -> orchestrator ``/chat`` (the real path);
- ``ws-hop``: the floor of any two-process design on this stack;
- ``ws-echo``: the floor of one WebSocket round trip;
- ``orchestrator`` and ``http-echo`` over HTTP directly, to tell the two hops apart.

Besides latency, each path's server-side CPU time per message is read from
/proc (utime + stime of its server processes over its blocks): on a machine
shared with other work, CPU time is the steadier figure of what a message costs.

Then ``RSS_MESSAGES`` messages go through the gateway (with a telemetry stream
open through it) and each process's resident memory is read from /proc; then
one memory approval (memory is not running: it fails, but loads the
orchestrator's gRPC client) and the orchestrator's memory again. The original's
figures from issue 12 (not measurable here: its Rust services do not build in
this environment) are quoted in the goals for reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.report import Figure, percentile

BLOCK = 50
BLOCKS = 6  # 300 round trips per path
WARMUP = 50
RSS_MESSAGES = 10_000
RSS_SOCKETS = 4
TWIN = "twin-sentinel"
# Issue 12, measured on this machine: the original gateway -> orchestrator (mock planner).
ORIGINAL_P50_MS = (0.32, 0.50)
ORIGINAL_P99_MS = (1.2, 1.6)
RSS_GOALS_MIB = {"gateway": 64, "orchestrator": 64, "telemetry": 32}


@dataclass
class Path_:
    """One measured path: how to send a message over it and wait for its one reply."""

    name: str
    round_trip: Callable[[int], Awaitable[None]]
    pids: tuple[int, ...] = ()  # the server processes the path runs through
    samples: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"floor on port {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"floor on port {port} did not listen within {timeout:.0f}s")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Floors:
    """The floor servers, each its own process (as the real components are)."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, kind: str, *extra: str) -> int:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.chat_floors", kind, str(port), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        self.processes[kind], self.ports[kind] = process, port
        _wait_listening(port, process)
        return port

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _chat_frame(index: int, session: str) -> str:
    return json.dumps(
        {
            "session_id": session,
            "user_id": TWIN,
            "timestamp": "2026-01-01T00:00:00Z",
            "message": f"hello {index}",
        }
    )


async def _ws_path(
    name: str, url: str, stack: list[Any], pids: tuple[int, ...], *, ours: bool
) -> Path_:
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=None, compression=None)
    stack.append(ws)

    async def round_trip(index: int) -> None:
        await ws.send(_chat_frame(index, f"bench-{name}"))
        reply = json.loads(await ws.recv())
        # Before issue 12 the gateway sent a "busy" status ahead of every reply.
        while ours and reply.get("status") == "busy":
            reply = json.loads(await ws.recv())
        if ours and reply.get("type") != "complete_message":
            raise RuntimeError(f"{name}: unexpected frame {reply}")

    return Path_(name, round_trip, pids)


def _http_path(name: str, client: httpx.AsyncClient, pids: tuple[int, ...]) -> Path_:
    async def round_trip(index: int) -> None:
        body = {"message": f"hello {index}", "twin_id": TWIN, "session_id": f"bench-{name}"}
        reply = await client.post("/chat", json=body, headers={"X-User-ID": TWIN})
        reply.raise_for_status()

    return Path_(name, round_trip, pids)


async def _run_block(path: Path_, count: int, record: bool) -> None:
    cpu_before = sum(_cpu_seconds(pid) for pid in path.pids)
    for index in range(count):
        started = time.perf_counter()
        await path.round_trip(index)
        if record:
            path.samples.append(time.perf_counter() - started)
    if record:
        path.cpu_seconds += sum(_cpu_seconds(pid) for pid in path.pids) - cpu_before


async def _approve_a_memory_search(url: str) -> dict[str, Any]:
    """One approval round trip: it loads the orchestrator's gRPC client (memory is down)."""
    from websockets.asyncio.client import connect

    async with connect(url, compression=None) as ws:
        await ws.send(_chat_frame(0, "bench-approval").replace("hello 0", "search the logs"))
        asked = json.loads(await ws.recv())
        memory_id = asked["issued_command"]["memory_id"]
        await ws.send(
            _chat_frame(0, "bench-approval").replace("hello 0", f"[MEMORY_SHOWN] {memory_id}")
        )
        result: dict[str, Any] = json.loads(await ws.recv())
    return result


async def _messages_through_gateway(url: str, count: int) -> float:
    from websockets.asyncio.client import connect

    async def one_socket(tag: int) -> None:
        async with connect(url, max_size=None, compression=None) as ws:
            for index in range(count // RSS_SOCKETS):
                await ws.send(_chat_frame(index, f"bench-rss-{tag}"))
                while json.loads(await ws.recv()).get("type") != "complete_message":
                    pass

    started = time.perf_counter()
    await asyncio.gather(*(one_socket(n) for n in range(RSS_SOCKETS)))
    return count / (time.perf_counter() - started)


async def _telemetry_events(client: httpx.AsyncClient, stop: asyncio.Event) -> int:
    events = 0
    async with client.stream("GET", "/v1/telemetry/stream") as stream:
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            events += line.startswith("event: metrics")
            if stop.is_set():
                break
    return events


def _ms(samples: list[float], pct: float) -> float:
    return percentile(samples, pct) * 1000


@dataclass
class Measured:
    paths: dict[str, Path_]
    rate: float
    events: int
    rss: dict[str, float] = field(default_factory=dict)


async def _measure(
    gateway_url: str, orchestrator_url: str, key: str, floors: Floors, pids: dict[str, int]
) -> Measured:
    ws_base = gateway_url.replace("http://", "ws://")
    sockets: list[Any] = []
    fp = {kind: process.pid for kind, process in floors.processes.items()}
    async with (
        httpx.AsyncClient(base_url=orchestrator_url, timeout=30) as orchestrator,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{floors.ports['http-echo']}", timeout=30
        ) as echo,
    ):
        ours = (pids["gateway"], pids["orchestrator"])
        paths = [
            await _ws_path(
                "ours", f"{ws_base}/ws/chat/{TWIN}?token={key}", sockets, ours, ours=True
            ),
            await _ws_path(
                "ws-hop",
                f"ws://127.0.0.1:{floors.ports['ws-hop']}/",
                sockets,
                (fp["ws-hop"], fp["http-echo"]),
                ours=False,
            ),
            await _ws_path(
                "ws-echo",
                f"ws://127.0.0.1:{floors.ports['ws-echo']}/",
                sockets,
                (fp["ws-echo"],),
                ours=False,
            ),
            _http_path("orchestrator", orchestrator, (pids["orchestrator"],)),
            _http_path("http-echo", echo, (fp["http-echo"],)),
        ]
        for path in paths:
            await _run_block(path, WARMUP, record=False)
        for _ in range(BLOCKS):
            for path in paths:
                await _run_block(path, BLOCK, record=True)
        for ws in sockets:
            await ws.close()

    ws_url = f"{ws_base}/ws/chat/{TWIN}?token={key}"
    async with httpx.AsyncClient(
        base_url=gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        stop = asyncio.Event()
        telemetry = asyncio.create_task(_telemetry_events(client, stop))
        rate = await _messages_through_gateway(ws_url, RSS_MESSAGES)
        stop.set()
        events = await asyncio.wait_for(telemetry, 30)
    measured = Measured({path.name: path for path in paths}, rate, events)
    measured.rss = {name: _rss_mib(pid) for name, pid in pids.items()}
    approval = await _approve_a_memory_search(ws_url)
    if approval.get("status") != "error":
        raise RuntimeError(f"the approval should fail with memory down: {approval}")
    measured.rss["orchestrator+grpc"] = _rss_mib(pids["orchestrator"])
    return measured


def _figures(measured: Measured, floor_rss: dict[str, float]) -> list[Figure]:
    paths = measured.paths
    ours = paths["ours"].samples
    figures = []
    for pct, original, goal in ((50, ORIGINAL_P50_MS, 2), (99, ORIGINAL_P99_MS, 3)):
        for floor, floor_name in (("ws-hop", "ws+http hop floor"), ("ws-echo", "ws echo floor")):
            figures.append(
                Figure(
                    "chat",
                    f"ws round trip p{pct} vs {floor}",
                    _ms(ours, pct),
                    "ms",
                    _ms(paths[floor].samples, pct),
                    floor_name,
                    f"<= {goal}x the original's {original[0]}-{original[1]} ms"
                    if floor == "ws-echo"
                    else "",
                )
            )
        figures.append(
            Figure(
                "chat",
                f"orchestrator /chat p{pct} vs http-echo",
                _ms(paths["orchestrator"].samples, pct),
                "ms",
                _ms(paths["http-echo"].samples, pct),
                "http echo floor",
            )
        )

    def cpu_ms(name: str) -> float:
        return paths[name].cpu_seconds / len(paths[name].samples) * 1000

    figures += [
        Figure(
            "chat",
            "server CPU/message: gateway+orchestrator",
            cpu_ms("ours"),
            "ms",
            cpu_ms("ws-hop"),
            "ws-hop+http-echo floor",
        ),
        Figure(
            "chat",
            "server CPU/message: orchestrator",
            cpu_ms("orchestrator"),
            "ms",
            cpu_ms("http-echo"),
            "http-echo floor",
        ),
        Figure("chat", f"ws messages/s, {RSS_SOCKETS} sockets", measured.rate, "msg/s"),
    ]
    floor_of = {"gateway": "ws-hop", "orchestrator": "http-echo", "telemetry": "http-echo"}
    for name, goal in RSS_GOALS_MIB.items():
        figures.append(
            Figure(
                "chat",
                f"{name} RSS after {RSS_MESSAGES:,} messages",
                measured.rss[name],
                "MiB",
                floor_rss[floor_of[name]],
                f"{floor_of[name]} floor",
                f"<= {goal} MiB",
            )
        )
    figures.append(
        Figure(
            "chat",
            "orchestrator RSS after an approval (gRPC)",
            measured.rss["orchestrator+grpc"],
            "MiB",
            floor_rss["http-echo"],
            "http-echo floor",
            "<= 64 MiB",
        )
    )
    return figures


def run() -> list[Figure]:
    from scripts.run_local import LocalStack, Ports, StackConfig

    workdir = Path(tempfile.mkdtemp(prefix="phoenix-bench-chat-"))
    config = StackConfig(
        state_dir=workdir / "state",
        ports=Ports.free(),
        cwd=workdir,
        env={"LLM_PROVIDER": "mock", "LOG_LEVEL": "warning", "TELEMETRY_INTERVAL_MS": "500"},
        output=lambda _: None,
    )
    stack = LocalStack(config)
    floors = Floors()
    try:
        stack.prepare()
        for name in ("orchestrator", "telemetry", "gateway"):
            stack.start(name)
        echo_port = floors.start("http-echo")
        floors.start("ws-echo")
        floors.start("ws-hop", f"http://127.0.0.1:{echo_port}")
        pids = {name: stack.processes[name].pid for name in RSS_GOALS_MIB}
        measured = asyncio.run(
            _measure(config.gateway_url, config.orchestrator_url, stack.api_key, floors, pids)
        )
        if measured.events < 1:
            raise RuntimeError("no telemetry event reached the client during the run")
        floor_rss = {kind: _rss_mib(p.pid) for kind, p in floors.processes.items()}
        return _figures(measured, floor_rss)
    finally:
        floors.stop()
        stack.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
