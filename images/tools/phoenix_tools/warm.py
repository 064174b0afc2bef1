"""Sandboxes started before their command is known, and a small pool of them per twin.

Setting a sandbox up (setpriv, choom, prlimit and bwrap: four execs, new user, pid,
net, mount, ipc and uts namespaces, a dozen mounts, the seccomp filter) costs about
9 ms on an idle 2-core machine and far more under load, against about 1 ms for a
short command. So the sandbox's own command is a *launcher*: a few lines of Python
that wait on stdin for the real argv and ``execvp`` it in place. A sandbox can then
be made ahead of time, and ``WarmPool`` keeps a couple ready for each recently
used twin.

Isolation is unchanged: a sandbox serves exactly one command, with its own fresh
execution directory and namespaces; the launcher is replaced by the command
(``execve``), so nothing of it is left, and the command's stdin is /dev/null as
before. The launcher reports on a close-on-exec pipe, as CPython's subprocess does:
``R`` once it runs (so bwrap's mounts are all done; only then is a sandbox pooled,
and only then may its directory be renamed), ``+`` once it has the argv, then the
errno if exec failed. No ``+`` means the command never started (setup failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phoenix_tools import runner, workdir

logger = logging.getLogger(__name__)

# Runs as the sandbox's command under ``python3 -I -S -c``; argv[1] is the report fd.
LAUNCHER = """\
import os, signal, sys
# Python ignores SIGPIPE and SIGXFSZ; ignored signals stay ignored across exec.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
report = int(sys.argv[1])
os.set_inheritable(report, False)
os.write(report, b"R")
data = bytearray()
while chunk := os.read(0, 65536):
    data += chunk
argv = bytes(data).split(b"\\0")[:-1]
if not argv:
    os._exit(125)
null = os.open("/dev/null", os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
os.write(report, b"+")
try:
    os.execvp(argv[0], argv)
except OSError as err:
    os.write(report, str(err.errno).encode())
    os._exit(127)
"""
READY = b"R"
DISPATCHED = b"+"


def launcher_argv(python: str, report_fd: int) -> list[str]:
    return [python, "-I", "-S", "-c", LAUNCHER, str(report_fd)]


def encode_argv(argv: Sequence[str]) -> bytes:
    """The launcher's wire format: each argument NUL-terminated (NUL cannot occur in one)."""
    return b"".join(arg.encode() + b"\0" for arg in argv)


@dataclass
class ExecReport:
    """What the launcher said: did the command start, and if not, why (an errno)."""

    dispatched: bool
    errno: int | None

    @classmethod
    def parse(cls, data: bytes) -> ExecReport:
        data = data.removeprefix(READY)
        if not data.startswith(DISPATCHED):
            return cls(False, None)
        rest = data[len(DISPATCHED) :]
        return cls(True, int(rest) if rest.isdigit() else None)


@dataclass
class Sandbox:
    """One started sandbox, waiting for (or running) its one command."""

    started: runner.Started
    exec_dir: Path
    status_r: int
    report_r: int | None  # None: no launcher, the command was given at spawn
    created: float = field(default_factory=time.monotonic)
    _closed: bool = False

    @property
    def alive(self) -> bool:
        return self.started.alive

    async def dispatch(self, argv: Sequence[str]) -> None:
        if self.report_r is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.started.send(encode_argv(argv))

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait for the launcher's ``R``: the sandbox is fully set up. False if it died."""
        assert self.report_r is not None, "no launcher to wait for"
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                try:
                    ready.set_result(os.read(fd, len(READY)))
                except OSError as err:
                    ready.set_exception(err)

        fd = self.report_r
        loop.add_reader(fd, readable)
        try:
            return await asyncio.wait_for(ready, timeout_s) == READY
        except (TimeoutError, OSError):
            return False
        finally:
            loop.remove_reader(fd)

    def report(self) -> ExecReport:
        if self.report_r is None:
            return ExecReport(True, None)
        return ExecReport.parse(_read_all(self.report_r))

    def close_fds(self) -> None:
        """Close the descriptors this sandbox owns, once (a second close could hit a reuse)."""
        if self._closed:
            return
        self._closed = True
        os.close(self.status_r)
        if self.report_r is not None:
            os.close(self.report_r)

    async def dispose(self) -> None:
        """Kill it unused and remove its directory."""
        await runner.discard(self.started)
        self.close_fds()
        await asyncio.to_thread(workdir.remove_exec_dir, self.exec_dir)


Spawner = Callable[[str, str], Awaitable[Sandbox]]
READY_TIMEOUT_S = 60.0


class WarmPool:
    """Up to ``per_twin`` ready sandboxes for each of the ``twins`` most recently used twins."""

    def __init__(self, spawn: Spawner, *, per_twin: int, twins: int, max_age_s: float) -> None:
        self._spawn = spawn
        self.per_twin = per_twin
        self.twins = twins
        self.max_age_s = max_age_s
        self._ready: OrderedDict[str, deque[Sandbox]] = OrderedDict()
        self._filling: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def take(self, twin: str, name: str) -> Sandbox:
        """A ready sandbox for ``twin`` if there is a live one, else a new one named ``name``
        (no need to wait for it: its argv waits in the pipe); then refill."""
        ready = self._ready.get(twin)
        found: Sandbox | None = None
        while ready:
            candidate = ready.popleft()
            if candidate.alive and time.monotonic() - candidate.created < self.max_age_s:
                found = candidate
                break
            self._background(candidate.dispose())
        self._touch(twin)
        self._refill(twin)
        if found is not None:
            return found
        return await self._spawn(twin, name)

    def ready_count(self, twin: str) -> int:
        return len(self._ready.get(twin, ()))

    def ready(self) -> list[Sandbox]:
        """Every sandbox waiting for a command, all twins."""
        return [box for boxes in self._ready.values() for box in boxes]

    async def wait_filled(self) -> None:
        """For tests and benchmarks: wait until no refill is under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        sandboxes = [s for ready in self._ready.values() for s in ready]
        self._ready.clear()
        await asyncio.gather(*(s.dispose() for s in sandboxes), return_exceptions=True)

    def _touch(self, twin: str) -> None:
        self._ready.setdefault(twin, deque())
        self._ready.move_to_end(twin)
        while len(self._ready) > self.twins:
            _, evicted = self._ready.popitem(last=False)
            for sandbox in evicted:
                self._background(sandbox.dispose())

    def _refill(self, twin: str) -> None:
        missing = self.per_twin - self.ready_count(twin) - self._filling.get(twin, 0)
        for _ in range(max(0, missing)):
            self._filling[twin] = self._filling.get(twin, 0) + 1
            self._background(self._fill_one(twin))

    async def _fill_one(self, twin: str) -> None:
        try:
            sandbox = await self._spawn(twin, uuid.uuid4().hex)
            if not await sandbox.wait_ready(READY_TIMEOUT_S):
                logger.warning("a sandbox started ahead of time never got ready")
                await sandbox.dispose()
                return
        except Exception:
            logger.exception("could not start a sandbox ahead of time", extra={"twin": twin})
            return
        finally:
            self._filling[twin] -= 1
        ready = self._ready.get(twin)
        if self._closed or ready is None or len(ready) >= self.per_twin:
            await sandbox.dispose()
            return
        ready.append(sandbox)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _read_all(fd: int) -> bytes:
    """What is in the pipe now, without blocking (the launcher writes before it execs)."""
    data = b""
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            data += chunk
    return data
