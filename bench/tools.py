"""Tools benchmark: `true` in the bubblewrap sandbox through the gRPC API vs a plain subprocess.

The service runs as its own process (`python -m phoenix_tools`), as in a pod, and
is called over a real channel. That path is everything a caller pays: gRPC round
trip, validation, policy, execution directory, setpriv + choom + prlimit + bwrap
(namespaces, mounts, seccomp), output capture and audit. Four baselines:
/usr/bin/true spawned from asyncio, the service's own sandbox command line
spawned directly (what bubblewrap itself costs on this kernel), a second
service with TOOLS_WARM_SANDBOXES=0 (no sandbox set up ahead of the request),
and an empty call to the warm service (grpc.health.v1 Check: what any call to
it costs on the same channel and server). The five are measured interleaved so
machine load hits them alike. Goal (issue 12): p50 <= 3 ms for the warm path.
The empty call plus a plain `true` is reported against that goal: at 1x the two
alone take all of it, leaving nothing for policy, work directory and sandbox.
Besides latency the bench reports CPU time per command: the warm service's own
(its process plus the sandboxes it reaped, refills included) against the plain
subprocess's.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.report import Figure, percentile
from phoenix_common.stubs import tools_pb2, tools_pb2_grpc
from phoenix_tools import sandbox, workdir
from phoenix_tools.runtime import SandboxRuntime
from phoenix_tools.settings import ToolsSettings

ITERATIONS = 100
WARMUP = 5
GOAL_MS = 3.0  # issue 12: an approved sandboxed `true`, end to end in the service


async def _spawn(argv: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, env={})
    if await proc.wait() != 0:
        raise RuntimeError(f"{argv[0]} failed")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(process: psutil.Process) -> float:
    """A process's CPU time plus that of the children it has reaped."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _raw_chain(root: Path) -> list[str]:
    """The service's sandbox command line for `true`, without the service around it."""
    settings = ToolsSettings(SANDBOX_DIR=str(root / "raw"))
    runtime = SandboxRuntime(settings)
    runtime.prepare()
    owner = workdir.Owner(settings.sandbox_uid, settings.sandbox_gid)
    exec_dir = workdir.create_exec_dir(settings.sandbox_dir, "bench", "raw", owner)
    layout = sandbox.SandboxLayout(exec_dir, None, runtime.etc_dir)
    bwrap = sandbox.bwrap_argv(
        runtime.bwrap, layout, ["/usr/bin/true"], limits=runtime.limits, seccomp_fd=None,
        status_fd=None,
    )  # fmt: skip
    return [
        *sandbox.privilege_prefix("setpriv", settings.sandbox_uid, settings.sandbox_gid),
        *sandbox.limit_prefix(runtime.limits, runtime.choom, runtime.prlimit),
        *bwrap,
    ]


def _start_service(root: Path, *, warm: int) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {
        **os.environ,
        "SANDBOX_DIR": str(root / f"service-warm{warm}"),
        "TOOLS_WARM_SANDBOXES": str(warm),
        "TOOLS_GRPC_HOST": "127.0.0.1",
        "TOOLS_GRPC_PORT": str(port),
        "TOOLS_METRICS_PORT": "0",
        "TOOLS_USE_BWRAP": "true",
        "LOG_LEVEL": "warning",
        "GRPC_ENABLE_FORK_SUPPORT": "false",
    }
    service = subprocess.Popen([sys.executable, "-m", "phoenix_tools"], env=env)
    return service, port


async def _wait_serving(channel: grpc.aio.Channel, service: subprocess.Popen[bytes]) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"phoenix-tools exited with {service.returncode}")
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("phoenix-tools did not become SERVING (is bubblewrap usable?)")


async def _measure(root: Path) -> list[Figure]:
    raw_argv = _raw_chain(root)
    # The default service keeps warm sandboxes; the second one has none, so every
    # command pays bwrap's namespace and mount setup as the first of a burst does.
    warm_service, warm_port = _start_service(root, warm=2)
    cold_service, cold_port = _start_service(root, warm=0)
    samples: dict[str, list[float]] = {
        "plain": [],
        "raw": [],
        "grpc": [],
        "grpc_cold": [],
        "grpc_empty": [],
    }
    cpu_s = {"plain": 0.0, "grpc": 0.0}
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{warm_port}") as warm_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{cold_port}") as cold_channel,
        ):
            await _wait_serving(warm_channel, warm_service)
            await _wait_serving(cold_channel, cold_service)
            request = tools_pb2.ExecutionRequest(twin_id="twin-aegis", command="true")

            def via(channel: grpc.aio.Channel) -> Callable[[], Awaitable[None]]:
                stub = tools_pb2_grpc.ToolExecutorServiceStub(channel)  # type: ignore[no-untyped-call]

                async def call() -> None:
                    reply = await stub.RequestExecution(request, timeout=30)
                    if not reply.success:
                        raise RuntimeError(f"sandboxed true failed: {reply.message}")

                return call

            health = health_pb2_grpc.HealthStub(warm_channel)
            health_request = health_pb2.HealthCheckRequest(service="")

            async def empty_call() -> None:
                await health.Check(health_request, timeout=30)

            cases: dict[str, Callable[[], Awaitable[None]]] = {
                "plain": lambda: _spawn(["/usr/bin/true"]),
                "raw": lambda: _spawn(raw_argv),
                "grpc": via(warm_channel),
                "grpc_cold": via(cold_channel),
                # The least any call to the service costs: same process, channel and spacing.
                "grpc_empty": empty_call,
            }
            # CPU: the bench reaps the plain subprocess; the warm service reaps its sandboxes.
            cpu_of: dict[str, Callable[[], float]] = {
                "plain": _children_cpu_s,
                "grpc": lambda: _process_cpu_s(psutil.Process(warm_service.pid)),
            }
            for i in range(WARMUP + ITERATIONS):
                for name, case in cases.items():
                    cpu_before = cpu_of[name]() if name in cpu_of else 0.0
                    started = time.perf_counter()
                    await case()
                    if i >= WARMUP:
                        samples[name].append((time.perf_counter() - started) * 1000)
                        if name in cpu_of:
                            cpu_s[name] += cpu_of[name]() - cpu_before
    finally:
        for service in (warm_service, cold_service):
            service.terminate()
            service.wait(timeout=30)
    plain, raw, grpc_p50, empty = (
        percentile(samples[k], 50) for k in ("plain", "raw", "grpc", "grpc_empty")
    )
    return [
        Figure(
            area="tools",
            name="sandboxed `true` via gRPC, p50",
            value=grpc_p50,
            unit="ms",
            baseline=plain,
            baseline_name="plain subprocess p50",
            goal=f"<= {GOAL_MS:g} ms (issue 12)",
        ),
        Figure(
            area="tools",
            name="sandboxed `true` via gRPC vs empty call + plain, p50",
            value=grpc_p50,
            unit="ms",
            baseline=empty + plain,
            baseline_name="empty gRPC call p50 + plain subprocess p50",
            goal="what the sandbox adds to the two floors",
        ),
        Figure(
            area="tools",
            name="floor: empty gRPC call + plain `true`, p50",
            value=empty + plain,
            unit="ms",
            baseline=GOAL_MS,
            baseline_name="issue 12's goal",
            goal="at 1x they leave the sandbox nothing",
        ),
        Figure(
            area="tools",
            name="sandboxed `true` via gRPC, p99",
            value=percentile(samples["grpc"], 99),
            unit="ms",
            baseline=percentile(samples["plain"], 99),
            baseline_name="plain subprocess p99",
        ),
        Figure(
            area="tools",
            name="CPU per sandboxed `true` (service + sandboxes)",
            value=cpu_s["grpc"] * 1000 / ITERATIONS,
            unit="ms",
            baseline=cpu_s["plain"] * 1000 / ITERATIONS,
            baseline_name="plain subprocess CPU",
        ),
        Figure(
            area="tools",
            name="sandboxed `true` via gRPC vs bare bwrap chain, p50",
            value=grpc_p50,
            unit="ms",
            baseline=raw,
            baseline_name="bare bwrap chain p50",
            goal="service adds little to bwrap",
        ),
        Figure(
            area="tools",
            name="sandboxed `true` via gRPC, warm sandbox vs none, p50",
            value=grpc_p50,
            unit="ms",
            baseline=percentile(samples["grpc_cold"], 50),
            baseline_name="TOOLS_WARM_SANDBOXES=0 p50",
            goal="warm sandboxes cut the bwrap setup from the request path",
        ),
        Figure(
            area="tools",
            name="p99: TOOLS_WARM_SANDBOXES=0 / bare bwrap chain",
            value=percentile(samples["grpc_cold"], 99),
            unit="ms",
            baseline=percentile(samples["raw"], 99),
            baseline_name="bare chain p99",
        ),
    ]


def run() -> list[Figure]:
    """Figures for `make bench` (needs root and bubblewrap, like the tools service)."""
    # Under /tmp with 0755, so the unprivileged sandbox uid can reach its directories.
    root = Path(tempfile.mkdtemp(prefix="phx-bench-tools-", dir="/tmp"))
    root.chmod(0o755)
    try:
        return asyncio.run(_measure(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
