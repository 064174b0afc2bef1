"""`make run` under build-like load: the launcher's spawns and whole-stack cycles.

Two failures were seen only while a build ran beside `make run` (issue 11): the
launcher hung for good in gRPC's fork handler, and the tools child aborted on
``epoll_wait: Bad file descriptor`` before it ever became phoenix-tools. Both came
from forking (``preexec_fn``) a process with live gRPC threads; see
scripts/localstack.py. These tests recreate that situation, under the load in
load.py, and count what is left afterwards. Sizes are set by environment
variables so `make stress` can run them longer than CI does:
``PHOENIX_STRESS_CYCLES`` (whole-stack start/stop cycles, CI 10),
``PHOENIX_STRESS_COMMANDS`` (sandboxed commands, CI 2000) and
``PHOENIX_STRESS_SPAWNS`` (bare spawns with live gRPC threads, CI 300).
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts import localstack
from scripts.localstack import LocalStack, Ports, StackConfig, StackError
from tests.stress.load import BuildLoad

# A hang inside fork() holds the main thread in C, where pytest-timeout's default
# (signal) method cannot reach it; the thread method dumps every stack and exits.
pytestmark = [pytest.mark.stress, pytest.mark.timeout(1800, method="thread")]

CYCLES = int(os.environ.get("PHOENIX_STRESS_CYCLES", "10"))
SPAWNS = int(os.environ.get("PHOENIX_STRESS_SPAWNS", "300"))


@pytest.fixture(scope="module")
def build_load() -> Iterator[BuildLoad]:
    with BuildLoad() as load:
        yield load


@pytest.fixture
def state_root() -> Iterator[Path]:
    # World-traversable: the sandbox below it runs as an unprivileged uid.
    root = Path(tempfile.mkdtemp(prefix="phx-stress-"))
    root.chmod(0o755)
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=False)


def open_fds() -> dict[int, str]:
    """This process's descriptors and what each points at (``socket:[inode]``, a path...)."""
    # Garbage from earlier tests (an unclosed channel or client) closes its descriptors
    # when collected; collect it now rather than in the middle of a measurement.
    gc.collect()
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # listdir's own, closed by now
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


def opened_since(before: dict[int, str]) -> dict[int, str]:
    """Descriptors open now that were not open at ``before``: what a leak leaves.

    Compared by what they point at, not counted: a descriptor that something else in
    this process closes meanwhile must not hide a leaked one (CI once saw 27 -> 24).
    """
    return {fd: target for fd, target in open_fds().items() if before.get(fd) != target}


def processes_marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``PHOENIX_STRESS_STACK=<marker>``."""
    needle = f"PHOENIX_STRESS_STACK={marker}".encode()
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if needle in Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0"):
                found.append(proc.pid)
    return found


def sandboxes_under(root: Path) -> list[int]:
    """bwrap processes (and their commands) working in a directory under ``root``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(root) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc.pid)
    return [pid for pid in found if pid != os.getpid()]


# ---------------------------------------------------------------- spawning beside live gRPC


def test_spawning_beside_live_grpc_client_threads_never_hangs_or_kills_the_child(
    build_load: BuildLoad, tmp_path: Path
) -> None:
    """The launcher's exact pattern, as fast as it goes: probe over gRPC, then spawn.

    With the old ``preexec_fn`` spawn this hung within a few iterations (gRPC's
    prefork handler waiting for its own threads) on this 2-core machine.
    """
    server = subprocess.Popen(
        localstack.spawn_argv([sys.executable, "-c", HEALTH_SERVER]),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        log = tmp_path / "child.log"
        before = open_fds()
        for i in range(SPAWNS):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=10
                )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            child = localstack.spawn(["/bin/sh", "-c", "exit 7"], {}, tmp_path, log)
            try:
                code = child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"spawn {i}: the child did not finish within 30 s")
            assert code == 7, f"spawn {i}: exit code {code}; child log:\n{log.read_text()}"
        assert log.read_text() == ""  # no gRPC fork-handler chatter, no abort message
        assert opened_since(before) == {}
    finally:
        server.kill()
        server.wait()


HEALTH_SERVER = """
import time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
time.sleep(3600)
"""


# ---------------------------------------------------------------- whole-stack cycles


def test_the_whole_stack_starts_and_stops_every_time_under_load(
    build_load: BuildLoad, state_root: Path
) -> None:
    """CYCLES times start all five, ask the gateway, stop: no hang, no abort, nothing left."""
    marker = uuid.uuid4().hex
    config = StackConfig(
        state_dir=state_root / "state",
        ports=Ports.free(),
        cwd=state_root,
        sandbox_dir=state_root / "sandbox",
        env={"PHOENIX_STRESS_STACK": marker, "LLM_PROVIDER": "mock"},
        output=lambda _: None,
        ready_timeout_s=240,
    )
    fds_before = open_fds()
    timings = []
    for cycle in range(CYCLES):
        started = time.monotonic()
        stack = LocalStack(config)
        try:
            with stack:
                timings.append(time.monotonic() - started)
                with httpx.Client(base_url=config.gateway_url, timeout=30) as client:
                    whoami = client.get(
                        "/api/whoami", headers={"Authorization": f"Bearer {stack.api_key}"}
                    )
                    assert whoami.status_code == 200, whoami.text
                    assert whoami.json()["twin_id"] == config.twin
                assert stack.exited() == {}
        except StackError as err:
            pytest.fail(f"cycle {cycle}: {err}")
        left = processes_marked(marker)
        assert left == [], f"cycle {cycle}: processes left after stop: {left}"
        assert sandboxes_under(state_root) == []
        for name in localstack.ORDER:
            log = (config.log_dir / f"{name}.log").read_text(errors="replace")
            assert "epoll_wait" not in log, f"cycle {cycle}: {name} log:\n{log[-2000:]}"
            assert "fork_posix" not in log, f"cycle {cycle}: {name} log:\n{log[-2000:]}"
    assert opened_since(fds_before) == {}, "the launcher leaked file descriptors"
    print(f"\n{CYCLES} cycles, start-up {min(timings):.1f}-{max(timings):.1f} s")


def test_a_component_that_never_becomes_healthy_is_named_with_its_log_and_all_is_stopped(
    state_root: Path,
) -> None:
    marker = uuid.uuid4().hex
    commands = dict(localstack.COMMANDS)
    # Prints, then sleeps without ever serving: the launcher must give up, not wait forever.
    commands["orchestrator"] = [
        sys.executable,
        "-c",
        "import time; print('orchestrator stuck in a loop', flush=True); time.sleep(600)",
    ]
    config = StackConfig(
        state_dir=state_root / "state",
        ports=Ports.free(),
        cwd=state_root,
        sandbox_dir=state_root / "sandbox",
        env={"PHOENIX_STRESS_STACK": marker},
        output=lambda _: None,
        ready_timeout_s=240,
        ready_timeouts={"orchestrator": 5},
        commands=commands,
    )
    with pytest.raises(StackError) as raised, LocalStack(config):
        pytest.fail("the stack came up with a component that never serves")
    message = str(raised.value)
    assert message.startswith("orchestrator was not healthy after 5 s")
    assert "orchestrator stuck in a loop" in message  # the log's tail
    assert processes_marked(marker) == []  # memory and tools, started before it, stopped
