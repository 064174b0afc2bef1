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
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 200
MAX_BYTES = 32 * 1024
DRAIN_TIMEOUT_S = 2.0
_CHUNK = 64 * 1024
_EXIT_POLL_S = 0.01


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


class Started:
    """A spawned process whose output is being captured; ``finish`` waits for its end.

    The event loop's epoll drives everything: both output pipes and a pidfd for the
    exit. asyncio's subprocess support on Python 3.11 starts a thread per process to
    wait for it (ThreadedChildWatcher) and a task per stream; each costs CPU and a
    hand-off between threads on the path from the command's exit to the reply.
    """

    def __init__(self, proc: subprocess.Popen[bytes], out_r: int, err_r: int, kill_bytes: int):
        self.proc = proc
        self.stdout = Captured()
        self.stderr = Captured()
        self.limited = False
        self._kill_bytes = kill_bytes
        self._loop = asyncio.get_running_loop()
        self._pipes: dict[int, Captured] = {out_r: self.stdout, err_r: self.stderr}
        self._changed: asyncio.Future[None] | None = None
        self._pidfd: int | None = None
        self._poller: asyncio.TimerHandle | None = None
        # The exit status, read as soon as the process exits; it is reaped only by
        # close(), so until then its pid, the group's id, cannot be reused (kill_group).
        self.returncode: int | None = None
        for fd in self._pipes:
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._on_output, fd)
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except OSError:  # Linux < 5.3, or pidfd_open filtered: poll for the exit instead
            self._poller = self._loop.call_later(_EXIT_POLL_S, self._poll_exit)
        else:
            self._loop.add_reader(self._pidfd, self._on_exit)

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def kill_group(self) -> None:
        """SIGKILL the process group: the process and whatever it left, even after it exited.

        Safe while the process is unreaped: a group id is a pid, and the kernel does not
        hand it out again while the (zombie) leader holds it. Once reaped, it does nothing.
        """
        if self.proc.returncode is None:
            _kill_group(self.proc.pid)

    @property
    def drained(self) -> bool:
        """Both output pipes are at EOF (or closed by us)."""
        return not self._pipes

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``condition()`` holds (True) or ``timeout_s`` has passed (False)."""
        deadline = self._loop.time() + timeout_s
        while not condition():
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return False
            self._changed = self._loop.create_future()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed
            except TimeoutError:
                return condition()
            finally:
                self._changed = None
        return True

    def close_pipes(self) -> None:
        """Stop reading: closing our ends also ends a writer that outlived the process."""
        for fd in list(self._pipes):
            self._close_pipe(fd)

    def close(self) -> None:
        """Release every descriptor and callback, and reap the process if it exited; safe to
        repeat. One still running is left to subprocess's own reaping of dropped Popens."""
        self.close_pipes()
        self._stop_watching_exit()
        if self.returncode is not None:
            self.proc.poll()

    def read_buffered(self) -> None:
        """Take in what the pipes hold right now, without waiting for more."""
        for fd in list(self._pipes):
            while fd in self._pipes and self._read_once(fd):
                pass

    def _on_output(self, fd: int) -> None:
        self._read_once(fd)

    def _read_once(self, fd: int) -> bool:
        """One read; True if it got data and the pipe is still open (there may be more)."""
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        sink = self._pipes[fd]
        if chunk:
            sink.add(chunk)
            if sink.total <= self._kill_bytes:
                return True
            self.limited = True
        self._close_pipe(fd)  # EOF, or past the kill limit: read no more of it
        self._wake()
        return False

    def _on_exit(self) -> None:
        self._stop_watching_exit()
        self._read_exit()  # the pidfd is readable: it has exited
        self._wake()

    def _poll_exit(self) -> None:
        self._poller = None
        if self._read_exit():
            self._wake()
        else:
            self._poller = self._loop.call_later(_EXIT_POLL_S, self._poll_exit)

    def _read_exit(self) -> bool:
        """Take the exit status if it has exited, leaving it unreaped (WNOWAIT)."""
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            result = os.waitid(os.P_PID, self.proc.pid, flags)
        except ChildProcessError:
            # Reaped elsewhere (SIGCHLD ignored, say): dead, status lost. Popen.poll() calls
            # that 0; and marked reaped, kill_group() will not signal a reusable pid.
            if self.proc.returncode is None:
                self.proc.returncode = 0
            self.returncode = self.proc.returncode
            return True
        if result is not None:
            # As Popen reports it: the exit code, or minus the signal that ended it.
            exited = result.si_code == os.CLD_EXITED
            self.returncode = result.si_status if exited else -result.si_status
        return self.returncode is not None

    def _stop_watching_exit(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def _close_pipe(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        os.close(fd)
        del self._pipes[fd]

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)


def start(spec: SpawnSpec, *, kill_bytes: int, stdin: int | None = None) -> Started:
    """Spawn ``spec`` and start capturing its output (from the running event loop);
    ``stdin`` is a descriptor for the child's stdin (the caller keeps and closes it),
    else /dev/null. Popen blocks only until the vfork()ed child has exec'd (see the
    module doc), as inside asyncio's own subprocess support."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argv built by sandbox.py, never a shell
            spec.argv,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=out_w,
            stderr=err_w,
            env=spec.env,
            cwd=spec.cwd,
            start_new_session=True,
            close_fds=True,
            pass_fds=spec.pass_fds,
            umask=0o077,
        )
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return Started(proc, out_r, err_r, kill_bytes)


async def finish(
    started: Started,
    *,
    timeout_s: float,
    status_read_fd: int | None = None,
    until_eof: bool = True,
) -> RunOutcome:
    """Wait for the end, a timeout or the output limit; never raises for the command's doing.

    The timeout and ``duration_s`` count from this call, which for a sandbox started
    ahead of time (warm.py) is when its command was handed over.

    ``until_eof=False`` is for bwrap, whose process exits as soon as the command has: the
    command's output is then all in the pipes and is read as it stands. What else still
    holds the pipes (bwrap's pid 1 while the kernel tears its namespaces down, processes the
    command left behind, which die with that pid 1) is not waited for here: the caller
    hands the process to ``release`` once the reply is out. The teardown of a mount
    namespace waits for an RCU grace period, 0.4-0.8 ms idle and several under load.
    """
    began = time.monotonic()
    timed_out = False
    try:
        await started.until(lambda: not started.alive or started.limited, timeout_s)
        if started.alive:
            timed_out = not started.limited
            started.kill_group()
        if until_eof:
            # Grandchildren may hold the pipes open (fallback mode has no PID namespace).
            if not await started.until(lambda: started.drained, DRAIN_TIMEOUT_S):
                started.kill_group()
        else:
            await started.until(lambda: not started.alive, DRAIN_TIMEOUT_S)
            started.read_buffered()
    except BaseException:
        await discard(started)
        raise
    if until_eof:
        await discard(started)
    status = _read_status(status_read_fd) if status_read_fd is not None else []
    returncode = started.returncode if started.returncode is not None else -signal.SIGKILL
    return RunOutcome(
        returncode=returncode,
        stdout=started.stdout,
        stderr=started.stderr,
        timed_out=timed_out,
        output_limited=started.limited,
        duration_s=time.monotonic() - began,
        status_lines=status,
    )


async def release(started: Started) -> None:
    """After ``finish(until_eof=False)``: once the pipes are at EOF (everything that held
    them is gone), or ``DRAIN_TIMEOUT_S`` has passed, close them; safe to repeat."""
    await started.until(lambda: started.drained, DRAIN_TIMEOUT_S)
    await discard(started)


async def discard(started: Started) -> None:
    """Kill what is left of the process group, close the pipes and reap; safe to repeat.

    The group is killed even when its leader has exited: in fallback mode (no PID
    namespace) a child that let go of the pipes would otherwise outlive the command.
    """
    started.kill_group()
    started.close_pipes()
    await started.until(lambda: not started.alive, DRAIN_TIMEOUT_S)
    started.close()


async def run(
    spec: SpawnSpec,
    *,
    timeout_s: float,
    kill_bytes: int,
    status_read_fd: int | None = None,
) -> RunOutcome:
    """Spawn and finish: one command from start to end."""
    started = start(spec, kill_bytes=kill_bytes)
    return await finish(started, timeout_s=timeout_s, status_read_fd=status_read_fd)


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
