"""Thousands of sandboxed commands through a real phoenix-tools process, under build-like load.

8 concurrent clients send ``PHOENIX_STRESS_COMMANDS`` (CI 2000) commands of several
shapes to one tools service (real bubblewrap, started by the local-stack
launcher), and every result is checked against what that command must print and
return. A quarter as many go to a service in the cwd-only fallback (``make run``
without bubblewrap), where no PID namespace ends what a command leaves behind.
Afterwards the service must still be the same process, with as many open
file descriptors as before, and nothing under it, of the sandbox's uid anywhere, or in
its sandbox directory but the sandboxes it keeps ready for the next commands (warm.py):
no process of a command, no execution directory. A double close of a descriptor gRPC
owns aborts the process (``epoll_wait: Bad file descriptor``); a leaked one shows in the
count.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
import pytest

from phoenix_common.stubs import tools_pb2, tools_pb2_grpc
from phoenix_tools import warm
from phoenix_tools.settings import ToolsSettings
from scripts.localstack import LocalStack, Ports, StackConfig
from tests.stress.load import BuildLoad

pytestmark = [pytest.mark.stress, pytest.mark.timeout(1800, method="thread")]

COMMANDS = int(os.environ.get("PHOENIX_STRESS_COMMANDS", "2000"))
CLIENTS = 8
TWIN = "twin-sentinel"


@dataclass(frozen=True)
class Case:
    """A command line and a check of its ExecutionResponse (None if right, else what's wrong)."""

    cmd: str
    check: Callable[[tools_pb2.ExecutionResponse], str | None]


def _expect(
    stdout: list[str] | None = None, stderr: list[str] | None = None, code: int = 0
) -> Callable[[tools_pb2.ExecutionResponse], str | None]:
    def check(response: tools_pb2.ExecutionResponse) -> str | None:
        got = (list(response.stdout_logs), list(response.stderr_logs), response.exit_code)
        want_out = stdout if stdout is not None else got[0]
        want_err = stderr if stderr is not None else got[1]
        if got != (want_out, want_err, code) or response.success != (code == 0):
            return f"got out={got[0]} err={got[1]} code={got[2]} ok={response.success}"
        return None

    return check


def case(i: int, rng: random.Random) -> Case:
    token = f"t{i}-{rng.randrange(10**9)}"
    kind = i % 6
    if kind == 0:
        return Case(f"echo {token}", _expect([token]))
    if kind == 1:
        return Case(f"printf '%s\\n' {token} >&2", _expect([], [token]))
    if kind == 2:
        n = rng.randrange(1, 150)
        return Case(f"seq {n}", _expect([str(k) for k in range(1, n + 1)]))
    if kind == 3:
        return Case("false", _expect([], [], 1))
    if kind == 4:
        # A child that lets go of the output, which the reply must not wait for and the
        # sandbox's end (bwrap) or the kill of the command's process group (cwd) must take:
        # a writer into the work directory (until RLIMIT_FSIZE stops it; the directory must
        # not outlive it), or a sleeper that would outlive the test if nothing killed it.
        left = "yes > left 2>/dev/null &" if i % 12 == 4 else "sleep 600 >/dev/null 2>&1 &"
        return Case(f"{left} echo {token}", _expect([token]))
    return Case(f"cat /nonexistent-{token}", _expect([], None, 1))


@pytest.fixture(scope="module")
def build_load() -> Iterator[BuildLoad]:
    with BuildLoad() as load:
        yield load


@dataclass(frozen=True)
class Mode:
    """How the service runs commands, the environment that picks it, and its share of COMMANDS."""

    name: str
    env: dict[str, str]
    share: float


MODES = [
    Mode("bwrap", {}, 1.0),
    # make run's mode without bubblewrap: no PID namespace, so what a command leaves behind is
    # killed by its process group (runner.discard), not by a namespace's end.
    Mode("cwd", {"TOOLS_USE_BWRAP": "false", "TOOLS_ALLOW_UNSANDBOXED": "true"}, 0.25),
]


@pytest.fixture(params=MODES, ids=lambda mode: mode.name)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def tools_stack(mode: Mode) -> Iterator[LocalStack]:
    root = Path(tempfile.mkdtemp(prefix="phx-stress-tools-"))
    root.chmod(0o755)
    config = StackConfig(
        state_dir=root / "state",
        ports=Ports.free(),
        env=mode.env,
        cwd=root,
        sandbox_dir=root / "sandbox",
        output=lambda _: None,
        ready_timeout_s=120,
    )
    stack = LocalStack(config)
    stack.prepare()
    try:
        stack.start("tools")
        yield stack
    finally:
        stack.stop_all()
        subprocess.run(["rm", "-rf", str(root)], check=False)


async def _client(
    stub: tools_pb2_grpc.ToolExecutorServiceStub, cases: list[Case], failures: list[str]
) -> None:
    for item in cases:
        request = tools_pb2.ExecutionRequest(twin_id=TWIN, command="command_exec", args=[item.cmd])
        response = await stub.RequestExecution(request, timeout=60)
        if (problem := item.check(response)) is not None:
            failures.append(f"{item.cmd!r}: {problem}; message={response.message!r}")


async def _run_all(port: int, cases: list[Case]) -> list[str]:
    failures: list[str] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = tools_pb2_grpc.ToolExecutorServiceStub(channel)  # type: ignore[no-untyped-call]
        await asyncio.gather(*(_client(stub, cases[k::CLIENTS], failures) for k in range(CLIENTS)))
    return failures


def _exec_dirs(sandbox: Path) -> list[Path]:
    twin = sandbox / TWIN
    return [p for p in twin.iterdir() if p.name != "workspace"] if twin.exists() else []


def _is_launcher(process: psutil.Process) -> bool:
    """A ready sandbox's launcher; a zombie (a command's sandbox the service has not
    reaped yet: runner.py reaps only after killing its group) or a process already gone is
    not."""
    try:
        return warm.LAUNCHER in process.cmdline() and process.name() != "bwrap"
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return False


def _sandbox_uid_processes() -> set[int]:
    """Every process of the sandbox's uid on the machine: what a command leaves behind is
    reparented away from the service once its shell exits (to pid 1 in the cwd fallback)."""
    uid = ToolsSettings().sandbox_uid
    return {p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid}


def _idle_and_leftover(service: psutil.Process, strangers: set[int]) -> tuple[list[int], list[int]]:
    """The launchers of sandboxes kept ready (warm.py) and every other process of the
    service's or of the sandbox's uid (but ``strangers``, there before the test).

    A ready sandbox is bwrap, bwrap's init and the launcher waiting for an argv; anything
    else once every command has answered is a leftover, zombies too.
    """
    descendants = service.children(recursive=True)
    launchers = [p for p in descendants if _is_launcher(p)]
    idle = {p.pid for p in launchers}
    for launcher in launchers:
        with contextlib.suppress(psutil.NoSuchProcess):  # recycled meanwhile (max age)
            idle |= {a.pid for a in launcher.parents() if a.pid != service.pid and a in descendants}
    suspects = {p.pid for p in descendants} | (_sandbox_uid_processes() - strangers)
    return [p.pid for p in launchers], sorted(suspects - idle)


def _peers(service: psutil.Process, port: int) -> set[tuple[str, int]]:
    """The remote ends of the connections the service holds on its gRPC port."""
    return {
        (conn.raddr.ip, conn.raddr.port)
        for conn in service.net_connections(kind="tcp")
        if conn.laddr and conn.laddr.port == port and conn.raddr
    }


def _clients_connected(service: psutil.Process, port: int, before: set[tuple[str, int]]) -> int:
    """Connections the service still holds on its gRPC port that it did not hold before the
    test's clients came (the stack's health probe keeps one channel for the service's life).
    Closed clients' linger until the service has seen them go: each is a descriptor that is
    not a leak."""
    return len(_peers(service, port) - before)


@dataclass(frozen=True)
class Expected:
    """What the service may hold once settled: sandboxes kept ready, connections it held
    before the test's clients came, and processes of the sandbox's uid that are not ours."""

    ready: int
    peers: set[tuple[str, int]]
    strangers: set[int]


def _settled(
    service: psutil.Process, sandbox: Path, port: int, expected: Expected, timeout_s: float = 60
) -> int:
    """Once the pool is refilled (``ready`` launchers waiting), the finished commands'
    directories are removed (after their replies) and the clients' connections are closed
    on the service's side too: the open fds then. Fails if that never happens (a
    leftover process, say): a state that does not settle is a leak the fd count could miss."""
    deadline = time.monotonic() + timeout_s
    while True:
        launchers, leftovers = _idle_and_leftover(service, expected.strangers)
        dirs_settled = len(_exec_dirs(sandbox)) == expected.ready
        settled = (
            len(launchers) == expected.ready
            and not leftovers
            and dirs_settled
            and _clients_connected(service, port, expected.peers) == 0
        )
        if settled:
            return service.num_fds()
        if time.monotonic() > deadline:
            clients = _clients_connected(service, port, expected.peers)
            pytest.fail(
                f"not settled after {timeout_s} s: {len(launchers)} of {expected.ready} "
                f"sandboxes ready, leftovers {leftovers}, {len(_exec_dirs(sandbox))} "
                f"execution directories, {clients} client connections"
            )
        time.sleep(0.2)


def test_thousands_of_sandboxed_commands_are_all_right_and_leave_nothing_behind(
    build_load: BuildLoad, tools_stack: LocalStack, mode: Mode
) -> None:
    service = psutil.Process(tools_stack.processes["tools"].pid)  # setpriv exec'd into it
    assert "phoenix_tools" in service.cmdline()
    port = tools_stack.config.ports.tools
    peers = _peers(service, port)
    strangers = _sandbox_uid_processes() - {p.pid for p in service.children(recursive=True)}
    # The mode as a command sees it: bubblewrap names the sandbox's host "sandbox".
    hostname = "sandbox" if mode.name == "bwrap" else socket.gethostname()
    assert hostname != "sandbox" or mode.name == "bwrap"
    seen = Case("cat /proc/sys/kernel/hostname", _expect([hostname]))
    assert asyncio.run(_run_all(port, [seen])) == []
    rng = random.Random(11)  # noqa: S311 - reproducible cases
    warmup = [case(i, rng) for i in range(2 * CLIENTS)]
    assert asyncio.run(_run_all(port, warmup)) == []
    # The launcher gives the service the defaults; only bubblewrap keeps sandboxes ready.
    ready = ToolsSettings().warm_sandboxes if mode.name == "bwrap" else 0
    expected = Expected(ready, peers, strangers)
    sandbox = tools_stack.config.sandbox_dir
    assert sandbox is not None
    fds_before = _settled(service, sandbox, port, expected)
    commands = int(COMMANDS * mode.share)
    cases = [case(i, rng) for i in range(commands)]
    started = time.monotonic()
    failures = asyncio.run(_run_all(port, cases))
    elapsed = time.monotonic() - started
    assert failures == [], f"{len(failures)} wrong results, first: {failures[:5]}"
    assert tools_stack.exited() == {}, tools_stack.log("tools")[-3000:]
    assert service.is_running()
    fds_after = _settled(service, sandbox, port, expected)
    assert fds_after == fds_before
    assert len(_exec_dirs(sandbox)) == expected.ready  # the ready sandboxes' own, nothing else
    log = tools_stack.log("tools")
    assert "epoll_wait" not in log
    print(f"\n{mode.name}: {commands} commands, {CLIENTS} clients: {commands / elapsed:.0f}/s")
