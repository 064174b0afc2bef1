"""Sandboxes started before their command is known, and a small pool of them per twin.

Setting a sandbox up (setpriv and bwrap: new user, pid, net, mount, ipc and uts
namespaces, a dozen mounts, the seccomp filter) costs several milliseconds of CPU,
and far more wall time under load, against about 1 ms for a short command. So the
sandbox's own command is a *launcher*: a few lines of POSIX sh (dash starts in well
under a millisecond; the Python launcher this replaced cost about 20 ms of CPU per
sandbox) that set the rlimits, wait on stdin for the real argv and ``exec`` it in
place. A sandbox can then be made ahead of time, and ``WarmPool`` keeps a couple
ready for each recently used twin, refilled once a command has finished.

Isolation is unchanged: a sandbox serves exactly one command, with its own fresh
execution directory and namespaces; the launcher is replaced by the command
(``exec``), so nothing of it is left, and the command's stdin is /dev/null as before.
The launcher's stdin is one end of a socket pair: it writes ``R`` there once it runs
(bwrap's mounts are all done and the limits set; only then is a sandbox pooled, and
only then may its directory be renamed), reads one line (the argv as shell words),
writes ``+``, points stdin at /dev/null (closing its end) and execs. No ``+`` means
the command never started (setup failed). If the exec itself fails, the shell says
so on stderr in a fixed form and exits 127 or 126 (``exec_failure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phoenix_tools import runner, workdir
from phoenix_tools.sandbox import Limits

logger = logging.getLogger(__name__)

LAUNCHER_NAME = "phoenix-launcher"
# Run as ``sh -c LAUNCHER phoenix-launcher <as KiB> <cpu s> <fsize blocks> <nofile> <nproc>
# <oom_score_adj>``. Lowering a limit or raising the OOM score needs no privilege, and
# ``set -e`` stops the launcher (no ``+``: a setup failure) if any of it fails. The argv
# line holds single-quoted words, with "$n" (a newline) between quoted pieces; ``eval``
# turns it back into the exact argv, and nothing in it is expanded.
LAUNCHER = """\
set -e
ulimit -v "$1"; ulimit -t "$2"; ulimit -f "$3"; ulimit -n "$4"; ulimit -p "$5"; ulimit -c 0
echo "$6" >/proc/self/oom_score_adj
n='
'
printf R >&0
IFS= read -r line
printf + >&0
exec </dev/null
eval "exec $line"
"""
READY = b"R"
DISPATCHED = b"+"
_EXEC_FAILED = re.compile(
    rf"^{LAUNCHER_NAME}: \d+: exec: (?P<prog>.*): (?P<why>[^:]+)$", re.MULTILINE
)


def launcher_argv(shell: str, limits: Limits) -> list[str]:
    """The launcher under ``shell``; dash's ulimit counts KiB for -v and 512-byte blocks
    for -f (rounded down: never a looser limit)."""
    return [
        shell, "-c", LAUNCHER, LAUNCHER_NAME,
        str(limits.as_bytes // 1024), str(limits.cpu_seconds),
        str(limits.fsize_bytes // 512), str(limits.nofile), str(limits.nproc),
        str(limits.oom_score_adj),
    ]  # fmt: skip


def encode_argv(argv: Sequence[str]) -> bytes:
    """One line of shell words that ``eval "exec $line"`` turns back into exactly ``argv``.

    Each piece is single-quoted (inside single quotes nothing is special but the quote
    itself, written as '"'"'); a newline becomes "$n" between pieces so the line stays one
    line. NUL cannot occur (requests.py refuses it)."""
    words = []
    for arg in argv:
        pieces = ("'" + piece.replace("'", "'\"'\"'") + "'" for piece in arg.split("\n"))
        words.append('"$n"'.join(pieces))
    return (" ".join(words) + "\n").encode()


def exec_failure(stderr: bytes) -> tuple[str, str] | None:
    """The program and reason if the launcher's ``exec`` failed (it then exits 126/127)."""
    match = _EXEC_FAILED.search(stderr.decode(errors="replace"))
    return (match["prog"], match["why"]) if match else None


@dataclass
class Sandbox:
    """One started sandbox, waiting for (or running) its one command."""

    started: runner.Started
    exec_dir: Path
    status_r: int
    channel: socket.socket | None  # None: no launcher, the command was given at spawn
    created: float = field(default_factory=time.monotonic)
    _closed: bool = False

    @property
    def alive(self) -> bool:
        return self.started.alive

    async def dispatch(self, argv: Sequence[str]) -> None:
        if self.channel is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await loop.sock_sendall(self.channel, encode_argv(argv))

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait for the launcher's ``R``: the sandbox is fully set up. False if it died."""
        assert self.channel is not None, "no launcher to wait for"  # noqa: S101 - narrowing
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.sock_recv(self.channel, 1), timeout_s) == READY
        except (TimeoutError, OSError):
            return False

    def dispatched(self) -> bool:
        """Did the command start (the launcher's ``+``)? Read once the process has ended."""
        if self.channel is None:
            return True
        data = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := self.channel.recv(64):
                data += chunk
        return data.removeprefix(READY).startswith(DISPATCHED)

    def close_fds(self) -> None:
        """Close the descriptors this sandbox owns, once (a second close could hit a reuse)."""
        if self._closed:
            return
        self._closed = True
        os.close(self.status_r)
        if self.channel is not None:
            self.channel.close()

    async def dispose(self) -> None:
        """Kill it unused and remove its directory."""
        await runner.discard(self.started)
        self.close_fds()
        await asyncio.to_thread(workdir.remove_exec_dir, self.exec_dir)


Spawner = Callable[[str, str], Awaitable[Sandbox]]
READY_TIMEOUT_S = 60.0
# How long a command waits for a sandbox already being set up before starting its own.
FILL_WAIT_S = 2.0


class WarmPool:
    """Up to ``per_twin`` ready sandboxes for each of the ``twins`` most recently used twins."""

    def __init__(self, spawn: Spawner, *, per_twin: int, twins: int, max_age_s: float) -> None:
        self._spawn = spawn
        self.per_twin = per_twin
        self.twins = twins
        self.max_age_s = max_age_s
        self._ready: OrderedDict[str, deque[Sandbox]] = OrderedDict()
        self._filling: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # refills and disposals
        self._refills: set[asyncio.Task[None]] = set()  # the refills alone: cancelled by close
        # Commands that found no ready sandbox while one was being set up, by twin.
        self._waiters: dict[str, deque[asyncio.Future[Sandbox | None]]] = {}
        self._closed = False

    async def take(self, twin: str, name: str) -> Sandbox:
        """A ready sandbox for ``twin`` if there is a live one, else a new one named ``name``
        (no need to wait for it: its argv waits in the socket). Nothing is refilled here:
        the caller calls ``refill`` once the command is over, so that setting up the
        next sandbox does not compete with this command for the CPU."""
        ready = self._ready.get(twin)
        found: Sandbox | None = None
        while ready:
            candidate = ready.popleft()
            if candidate.alive and time.monotonic() - candidate.created < self.max_age_s:
                found = candidate
                break
            self._background(candidate.dispose())
        self._touch(twin)
        if found is not None:
            return found
        waiters = self._waiters.setdefault(twin, deque())
        if self._filling.get(twin, 0) > len(waiters):
            # One is being set up (a burst outran the refill): it is ready sooner than a
            # new one would be, which would also compete with it for the CPU.
            waiter: asyncio.Future[Sandbox | None] = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
            handed: Sandbox | None = None
            try:
                async with asyncio.timeout(FILL_WAIT_S):
                    handed = await waiter
            except TimeoutError:
                handed = _result_of(waiter)  # handed over just as the wait timed out
            except BaseException:  # cancelled: what was handed over meanwhile goes on
                if (late := _result_of(waiter)) is not None:
                    self._hand_over(twin, late)
                raise
            finally:
                self._drop_waiter(twin, waiter)
            if handed is not None:
                return handed
        else:
            self._drop_waiter(twin, None)
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
        """Stop refilling, dispose of every sandbox (ready or being started) and wait."""
        self._closed = True
        for task in list(self._refills):
            task.cancel()  # a cancelled fill disposes of its own sandbox
        await self.wait_filled()
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

    def refill(self, twin: str) -> None:
        """Top ``twin``'s sandboxes up (in the background)."""
        if self._closed or twin not in self._ready:
            return  # closed, or evicted since the command that asked
        missing = self.per_twin - self.ready_count(twin) - self._filling.get(twin, 0)
        for _ in range(max(0, missing)):
            self._filling[twin] = self._filling.get(twin, 0) + 1
            self._background(self._fill_one(twin), refill=True)

    async def _fill_one(self, twin: str) -> None:
        try:
            # Cancelled inside the spawn, asyncio kills and reaps the process itself.
            sandbox = await self._spawn(twin, uuid.uuid4().hex)
        except Exception:
            self._filling[twin] -= 1
            self._wake_waiter(twin, None)
            logger.exception("could not start a sandbox ahead of time", extra={"twin": twin})
            return
        except BaseException:
            self._filling[twin] -= 1
            self._wake_waiter(twin, None)
            raise
        try:
            got_ready = await sandbox.wait_ready(READY_TIMEOUT_S)
        except BaseException:  # cancelled by close(): the sandbox must not outlive the pool
            self._wake_waiter(twin, None)
            await sandbox.dispose()
            raise
        finally:
            self._filling[twin] -= 1
        if not got_ready:
            logger.warning("a sandbox started ahead of time never got ready")
            self._wake_waiter(twin, None)
            await sandbox.dispose()
            return
        self._hand_over(twin, sandbox)

    def _hand_over(self, twin: str, sandbox: Sandbox) -> None:
        """Give a ready sandbox to a command waiting for one, else pool it (or dispose of it)."""
        if self._wake_waiter(twin, sandbox):
            return
        ready = self._ready.get(twin)
        if self._closed or ready is None or len(ready) >= self.per_twin:
            self._background(sandbox.dispose())
            return
        ready.append(sandbox)

    def _wake_waiter(self, twin: str, sandbox: Sandbox | None) -> bool:
        """Hand ``sandbox`` (None: start your own) to the first waiting command, if any."""
        for waiter in self._waiters.get(twin, ()):
            if not waiter.done():
                waiter.set_result(sandbox)
                return True
        return False

    def _drop_waiter(self, twin: str, waiter: asyncio.Future[Sandbox | None] | None) -> None:
        waiters = self._waiters.get(twin)
        if waiters is None:
            return
        if waiter is not None:
            waiters.remove(waiter)
        if not waiters:
            del self._waiters[twin]

    def _background(self, work: Awaitable[None], *, refill: bool = False) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if refill:
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)


def _result_of(waiter: asyncio.Future[Sandbox | None]) -> Sandbox | None:
    return waiter.result() if waiter.done() and not waiter.cancelled() else None
