"""Running one sandboxed process: spawn, capped output, timeout, process-group kill.

The process is spawned with no ``preexec_fn`` and no ``user``/``group``: either
forces CPython to ``fork()`` this multi-threaded gRPC process (gRPC's fork
handlers run, and the child runs code before ``execve()``); without them it uses
``vfork()`` and the child only execs. Privileges are dropped by ``setpriv`` in
the exec'd chain instead (sandbox.privilege_prefix). ``start_new_session`` makes
the process a group leader so a timeout kills the whole group, stdin is
/dev/null, and the environment is whatever the caller passes (empty for bwrap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 200
MAX_BYTES = 32 * 1024
DRAIN_TIMEOUT_S = 2.0
_CHUNK = 64 * 1024


@dataclass
class Captured:
    """The first MAX_BYTES of a stream and how much there was in all."""

    head: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        room = MAX_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.total += len(chunk)

    def lines(self) -> tuple[list[str], bool]:
        """Lossy UTF-8 lines, at most MAX_LINES and MAX_BYTES; True if anything was cut.

        Lines end at "\n" (a "\r" before it is dropped), so that stdout_logs joined by
        "\n", as the original's clients join them, is what the program printed.
        str.splitlines() also split at U+0085, U+2028, form feeds and a lone "\r".
        """
        text = bytes(self.head).decode("utf-8", errors="replace")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if lines[-1] == "":
            lines.pop()  # the "\n" that ends the last line starts no new one
        truncated = self.total > len(self.head) or len(lines) > MAX_LINES
        return lines[:MAX_LINES], truncated


@dataclass(frozen=True)
class SpawnSpec:
    argv: Sequence[str]
    env: dict[str, str]
    cwd: Path | None
    pass_fds: tuple[int, ...] = ()


@dataclass
class RunOutcome:
    returncode: int
    stdout: Captured
    stderr: Captured
    timed_out: bool
    output_limited: bool
    duration_s: float
    status_lines: list[dict[str, object]]

    @property
    def bwrap_exit_code(self) -> int | None:
        """The command's exit code as bwrap reported it; None if it never ran."""
        for entry in self.status_lines:
            code = entry.get("exit-code")
            if isinstance(code, int):
                return code
        return None


@dataclass
class Started:
    """A spawned process whose output is being captured; ``finish`` waits for its end."""

    proc: asyncio.subprocess.Process
    stdout: Captured
    stderr: Captured
    readers: list[asyncio.Task[None]]
    limited: asyncio.Event

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


async def start(spec: SpawnSpec, *, kill_bytes: int, stdin: int | None = None) -> Started:
    """Spawn ``spec`` (vfork-safe, see the module doc) and start capturing its output;
    ``stdin`` is a descriptor for the child's stdin (the caller keeps and closes it),
    else /dev/null."""
    proc = await asyncio.create_subprocess_exec(
        *spec.argv,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=spec.env,
        cwd=spec.cwd,
        start_new_session=True,
        close_fds=True,
        pass_fds=spec.pass_fds,
        umask=0o077,
    )
    out, err = Captured(), Captured()
    limited = asyncio.Event()
    assert proc.stdout is not None  # noqa: S101 - narrowing: PIPE above
    assert proc.stderr is not None  # noqa: S101 - narrowing: PIPE above
    readers = [
        asyncio.create_task(_pump(proc.stdout, out, kill_bytes, limited)),
        asyncio.create_task(_pump(proc.stderr, err, kill_bytes, limited)),
    ]
    return Started(proc, out, err, readers, limited)


async def finish(
    started: Started, *, timeout_s: float, status_read_fd: int | None = None
) -> RunOutcome:
    """Wait for the end, a timeout or the output limit; never raises for the command's doing.

    The timeout and ``duration_s`` count from this call, which for a sandbox started
    ahead of time (warm.py) is when its command was handed over.
    """
    began = time.monotonic()
    proc, readers, limited = started.proc, started.readers, started.limited
    # proc.wait() returns only once the pipes close too, which a grandchild can delay;
    # _exited notices the exit itself.
    waiter = asyncio.create_task(proc.wait())
    exited = asyncio.create_task(_exited(proc))
    limit_hit = asyncio.create_task(limited.wait())
    timed_out = False
    try:
        done, _ = await asyncio.wait(
            {waiter, exited, limit_hit}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if proc.returncode is None:
            timed_out = limit_hit not in done
            _kill_group(proc.pid)
        # Grandchildren may hold the pipes open (fallback mode has no PID namespace).
        _, pending = await asyncio.wait(readers, timeout=DRAIN_TIMEOUT_S)
        if pending:
            _kill_group(proc.pid)
    finally:
        await discard(started, waiter=waiter, extra=(exited, limit_hit))
    status = _read_status(status_read_fd) if status_read_fd is not None else []
    returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return RunOutcome(
        returncode=returncode,
        stdout=started.stdout,
        stderr=started.stderr,
        timed_out=timed_out,
        output_limited=limited.is_set(),
        duration_s=time.monotonic() - began,
        status_lines=status,
    )


async def discard(
    started: Started,
    *,
    waiter: asyncio.Task[int] | None = None,
    extra: tuple[asyncio.Task[object], ...] = (),
) -> None:
    """Kill what is left of the process group, close the pipes and reap; safe to repeat."""
    proc = started.proc
    for task in (*started.readers, *extra):
        task.cancel()
    if proc.returncode is None:
        _kill_group(proc.pid)
    # Closing the transport closes pipes a setsid'd grandchild may still hold.
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter or proc.wait(), DRAIN_TIMEOUT_S)


async def run(
    spec: SpawnSpec,
    *,
    timeout_s: float,
    kill_bytes: int,
    status_read_fd: int | None = None,
) -> RunOutcome:
    """Spawn and finish: one command from start to end."""
    started = await start(spec, kill_bytes=kill_bytes)
    return await finish(started, timeout_s=timeout_s, status_read_fd=status_read_fd)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    # asyncio exposes no exit event apart from wait(), which also waits for the pipes.
    while proc.returncode is None:  # noqa: ASYNC110 - see the comment above
        await asyncio.sleep(0.05)


async def _pump(
    stream: asyncio.StreamReader, sink: Captured, kill_bytes: int, limited: asyncio.Event
) -> None:
    while chunk := await stream.read(_CHUNK):
        sink.add(chunk)
        if sink.total > kill_bytes:
            limited.set()
            return


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_status(fd: int) -> list[dict[str, object]]:
    """bwrap's --json-status-fd output: one JSON object per line (child-pid, exit-code)."""
    data = b""
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 4096):
            data += chunk
    entries: list[dict[str, object]] = []
    for raw in data.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            if isinstance(value, dict):
                entries.append(value)
    return entries


def exit_code_of(returncode: int) -> int:
    """A shell-style exit code: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode
