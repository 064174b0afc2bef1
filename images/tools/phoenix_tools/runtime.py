"""The sandbox runtime: runs one argv for a twin in bwrap or the cwd fallback.

It owns the host-side details (binaries, the sandbox uid, the seccomp filter,
execution directories) and turns a raw process outcome into an
``ExecResult`` with the original's exit codes: 124 timeout, 126 not
executable, 127 not found, bwrap's own setup failures told apart from the
command's via ``--json-status-fd``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from phoenix_common.errors import FailedPrecondition
from phoenix_tools import runner, sandbox, seccomp, warm, workdir
from phoenix_tools.sandbox import Limits, SandboxLayout, SandboxMode
from phoenix_tools.settings import ToolsSettings

_EXECVP_FAILED = re.compile(r"^bwrap: execvp (?P<prog>.*): (?P<why>[^:]+)$", re.MULTILINE)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: list[str]
    stderr: list[str]
    message: str
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    timed_out: bool
    duration_ms: int
    outcome: str

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and self.outcome == "completed"


class SandboxRuntime:
    """Everything needed to spawn sandboxed commands; ``mode`` is set by the self-test."""

    def __init__(self, settings: ToolsSettings) -> None:
        self.settings = settings
        self.mode: SandboxMode = "unavailable"
        self.mode_reason = "self-test not run yet"
        self.sandbox_dir = settings.sandbox_dir
        self.etc_dir = self.sandbox_dir / workdir.ETC_DIR
        self.bwrap = shutil.which(settings.bwrap_path) or settings.bwrap_path
        self.choom = shutil.which("choom") or "choom"
        self.prlimit = shutil.which("prlimit") or "prlimit"
        self.setpriv = shutil.which("setpriv")
        self.drop_privileges = os.geteuid() == 0
        self.owner = workdir.Owner(
            settings.sandbox_uid if self.drop_privileges else None,
            settings.sandbox_gid if self.drop_privileges else None,
        )
        self.seccomp_filter = seccomp.build_filter() if seccomp.supported() else None
        # The shell of the sandbox's launcher (warm.py); None runs commands directly.
        self.shell = sandbox_shell(settings.sandbox_shell)
        self.pool: warm.WarmPool | None = None
        self._removals: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self.limits = Limits(
            as_bytes=settings.rlimit_as_mb * 1024 * 1024,
            cpu_seconds=settings.rlimit_cpu_s,
            fsize_bytes=settings.rlimit_fsize_mb * 1024 * 1024,
            nofile=settings.rlimit_nofile,
            nproc=settings.rlimit_nproc,
            tmpfs_bytes=settings.tmpfs_mb * 1024 * 1024,
        )

    def _spawn_spec(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        cwd: Path | None,
        fds: tuple[int, ...],
        *,
        set_limits: bool = True,
    ) -> runner.SpawnSpec:
        """Privilege drop (setpriv, when the service is root) + rlimits + argv.

        ``set_limits=False`` leaves out choom and prlimit, for a chain whose own last step
        (the launcher, warm.py) sets the same limits before the command runs: two execs
        fewer per sandbox. Without setpriv a root service cannot drop privileges without
        forking itself (runner's docstring), so it refuses rather than run commands as root.
        """
        limits = sandbox.limit_prefix(self.limits, self.choom, self.prlimit) if set_limits else []
        uid, gid = self.owner.uid, self.owner.gid
        if self.setpriv is None:
            if uid is None:
                return runner.SpawnSpec([*limits, *argv], env, cwd, fds)
            raise FailedPrecondition(
                "setpriv (util-linux) is not on PATH: the service runs as root and cannot "
                "drop privileges for the sandbox without it"
            )
        drop = sandbox.privilege_prefix(self.setpriv, uid, gid)
        return runner.SpawnSpec([*drop, *limits, *argv], env, cwd, fds)

    def prepare(self) -> None:
        """Create SANDBOX_DIR and the sandbox's /etc files."""
        self.etc_dir = workdir.prepare_root(self.sandbox_dir)

    def workspace(self, twin_id: str) -> Path:
        return workdir.workspace_dir(self.sandbox_dir, twin_id)

    async def run(
        self,
        twin_id: str,
        argv: Sequence[str],
        *,
        execution_id: str | None = None,
        mode: SandboxMode | None = None,
        timeout_s: float | None = None,
    ) -> ExecResult:
        """Run ``argv`` for ``twin_id``; FailedPrecondition when no sandbox is usable."""
        mode = mode or self.mode
        if mode == "unavailable":
            raise FailedPrecondition(
                f"no sandbox available ({self.mode_reason}); commands are refused. Make "
                "bubblewrap work (docs/tools.md) or set TOOLS_ALLOW_UNSANDBOXED=true for the "
                "cwd-only fallback (not in SAFE_MODE)"
            )
        execution_id = execution_id or uuid.uuid4().hex
        async with self._slots:
            if mode == "bwrap":
                return await self._run_bwrap(twin_id, execution_id, argv, timeout_s)
            exec_dir = workdir.create_exec_dir(self.sandbox_dir, twin_id, execution_id, self.owner)
            try:
                return await self._run_fallback(exec_dir, argv, timeout_s)
            finally:
                if not self.settings.keep_exec_dirs:
                    await asyncio.to_thread(workdir.remove_exec_dir, exec_dir)

    def enable_warm_pool(self) -> None:
        """Keep sandboxes ready ahead of commands (bwrap mode, with a working launcher)."""
        if self.shell is None or self.settings.warm_sandboxes == 0 or self.pool is not None:
            return
        self.pool = warm.WarmPool(
            self._start_sandbox,
            per_twin=self.settings.warm_sandboxes,
            twins=self.settings.warm_twins,
            max_age_s=self.settings.warm_max_age_s,
        )

    async def close(self) -> None:
        """Stop and remove the sandboxes kept ready; finish removing execution directories."""
        if self.pool is not None:
            await self.pool.close()
        await self.removals_done()

    async def removals_done(self) -> None:
        """Wait until finished commands' sandboxes are released and their directories gone."""
        while self._removals:
            await asyncio.gather(*list(self._removals), return_exceptions=True)

    def _clean_up_later(
        self, twin_id: str, started: runner.Started, exec_dir: Path, *, finished: bool
    ) -> None:
        """What a command leaves, dealt with once its reply is out (all of it costs the
        caller time for nothing): the pool's refill, the end of the sandbox (runner.release,
        or a kill when the command did not finish normally), and the removal of its
        directory, in a thread (an ``rmdir`` costs 1-3 ms on an ext4 mounted with
        ``discard``), only once the sandbox has let go of the pipes (bwrap's init and
        whatever still printed are gone). The next command gets a new sandbox regardless."""
        task = asyncio.ensure_future(self._clean_up(twin_id, started, exec_dir, finished))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    async def _clean_up(
        self, twin_id: str, started: runner.Started, exec_dir: Path, finished: bool
    ) -> None:
        # From the event loop's next turn, once gRPC has been handed the reply: the refill's
        # spawn takes about 1 ms of this thread.
        await asyncio.sleep(0)
        if self.pool is not None:
            self.pool.refill(twin_id)
        await (runner.release(started) if finished else runner.discard(started))
        if not self.settings.keep_exec_dirs:
            await asyncio.to_thread(workdir.remove_exec_dir, exec_dir)

    async def _run_bwrap(
        self, twin_id: str, execution_id: str, argv: Sequence[str], timeout_s: float | None
    ) -> ExecResult:
        if self.pool is not None:
            box = await self.pool.take(twin_id, execution_id)
        else:
            box = await self._start_sandbox(
                twin_id, execution_id, command=argv if self.shell is None else None
            )
        exec_dir = box.exec_dir
        finished = False
        try:
            await box.dispatch(argv)
            if exec_dir.name != execution_id:  # started ahead (and ready: its mounts are done)
                # Host-side name only (the sandbox has it mounted), so while the command runs.
                exec_dir = exec_dir.rename(exec_dir.with_name(execution_id))
            outcome = await runner.finish(
                box.started,
                timeout_s=timeout_s or self.settings.exec_timeout_s,
                status_read_fd=box.status_r,
                until_eof=False,
            )
            finished = True
            dispatched = box.dispatched()
        finally:
            box.close_fds()
            self._clean_up_later(twin_id, box.started, exec_dir, finished=finished)
        launched = box.channel is not None
        return self._result(
            outcome, argv, bwrap=True, timeout_s=timeout_s, launched=launched, dispatched=dispatched
        )

    async def _start_sandbox(
        self, twin_id: str, name: str, command: Sequence[str] | None = None
    ) -> warm.Sandbox:
        """A bwrap sandbox in a fresh ``<twin>/<name>`` directory, running ``command`` or,
        when it is None, the launcher waiting for one (warm.py)."""
        exec_dir = workdir.create_exec_dir(self.sandbox_dir, twin_id, name, self.owner)
        layout = SandboxLayout(exec_dir, self.workspace(twin_id), self.etc_dir)
        # Each descriptor is closed exactly once, unsuppressed: a second close of the same
        # number can close whatever reused it (gRPC's epoll fd, say). The child's ends are
        # closed here once it has its copies; ours go to the Sandbox.
        child_ends: list[int] = []
        ours: list[int] = []
        channel: socket.socket | None = None
        launcher_end: socket.socket | None = None
        try:
            status_r, status_w = os.pipe()
            ours.append(status_r)
            child_ends.append(status_w)
            if command is None:
                assert self.shell is not None  # noqa: S101 - narrowing: checked by the caller
                channel, launcher_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                channel.setblocking(False)
                command = warm.launcher_argv(self.shell, self.limits)
            seccomp_fd: int | None = None
            if self.seccomp_filter is not None:
                seccomp_fd = os.memfd_create("phoenix-seccomp")
                child_ends.append(seccomp_fd)
                os.write(seccomp_fd, self.seccomp_filter)
                os.lseek(seccomp_fd, 0, os.SEEK_SET)
            cmd = sandbox.bwrap_argv(
                self.bwrap,
                layout,
                command,
                limits=self.limits,
                seccomp_fd=seccomp_fd,
                status_fd=status_w,
            )
            spec = self._spawn_spec(
                cmd, {}, None, tuple(child_ends), set_limits=launcher_end is None
            )
            started = runner.start(
                spec,
                kill_bytes=self.settings.output_kill_bytes,
                stdin=None if launcher_end is None else launcher_end.fileno(),
            )
        except BaseException:
            for fd in ours:
                os.close(fd)
            if channel is not None:
                channel.close()
            await asyncio.to_thread(workdir.remove_exec_dir, exec_dir)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
            if launcher_end is not None:
                launcher_end.close()
        return warm.Sandbox(started, exec_dir, status_r, channel)

    async def _run_fallback(
        self, exec_dir: Path, argv: Sequence[str], timeout_s: float | None
    ) -> ExecResult:
        spec = self._spawn_spec(argv, sandbox.fallback_env(exec_dir), exec_dir, ())
        outcome = await runner.run(
            spec,
            timeout_s=timeout_s or self.settings.exec_timeout_s,
            kill_bytes=self.settings.output_kill_bytes,
        )
        return self._result(outcome, argv, bwrap=False, timeout_s=timeout_s)

    def _result(
        self,
        outcome: runner.RunOutcome,
        argv: Sequence[str],
        *,
        bwrap: bool,
        timeout_s: float | None,
        launched: bool = False,
        dispatched: bool = True,
    ) -> ExecResult:
        stdout, out_cut = outcome.stdout.lines()
        stderr, err_cut = outcome.stderr.lines()
        elapsed = int(outcome.duration_s * 1000)
        shown = " ".join(argv)[:200]
        code = runner.exit_code_of(outcome.returncode)
        base = ExecResult(
            exit_code=code,
            stdout=stdout,
            stderr=stderr,
            message="",
            stdout_bytes=outcome.stdout.total,
            stderr_bytes=outcome.stderr.total,
            truncated=out_cut or err_cut,
            timed_out=False,
            duration_ms=elapsed,
            outcome="completed",
        )
        if outcome.timed_out:
            ms = int((timeout_s or self.settings.exec_timeout_s) * 1000)
            return replace(
                base,
                exit_code=124,
                stderr=[*stderr, f"Execution timed out after {ms}ms: {shown}"],
                message="execution_timeout",
                timed_out=True,
                outcome="timeout",
            )
        if outcome.output_limited:
            message = (
                f"output_limit_exceeded: a stream passed {self.settings.output_kill_bytes} "
                f"bytes and the command was killed (elapsed_ms={elapsed})"
            )
            return replace(base, exit_code=code or 1, message=message, outcome="output_limit")
        if bwrap:
            reported = outcome.bwrap_exit_code
            if not dispatched:
                return _setup_failure(base, shown)
            failed = warm.exec_failure(bytes(outcome.stderr.head)) if launched else None
            if failed is not None and reported in (126, 127):
                return _not_executed(base, *failed, missing=reported == 127)
            if reported is None:
                return _bwrap_failure(base, bytes(outcome.stderr.head), shown)
            code = reported
        if code == 0:
            message = f"Execution completed (elapsed_ms={elapsed})"
        else:
            message = f"Execution failed (exit_code={code}, elapsed_ms={elapsed})"
        message += _truncation_note(outcome, out_cut, err_cut)
        return replace(
            base,
            exit_code=code,
            message=message,
            outcome="completed" if code == 0 else "failed",
        )


def _not_executed(base: ExecResult, program: str, why: str, *, missing: bool) -> ExecResult:
    if missing:
        line = f"Command not found: {program} ({why})"
        return replace(base, exit_code=127, stderr=[line], message=line, outcome="failed")
    line = f"Permission denied executing: {program} ({why})"
    return replace(base, exit_code=126, stderr=[line], message=line, outcome="failed")


def _setup_failure(base: ExecResult, shown: str) -> ExecResult:
    return replace(
        base,
        exit_code=1,
        stderr=["sandbox setup failed", *base.stderr],
        message=f"sandbox_setup_failed: bubblewrap could not start {shown!r}",
        outcome="sandbox_error",
    )


def _bwrap_failure(base: ExecResult, stderr: bytes, shown: str) -> ExecResult:
    """bwrap ran the command itself and never reported an exit code: exec or setup failed."""
    match = _EXECVP_FAILED.search(stderr.decode(errors="replace"))
    if match:
        missing = "No such file" in match["why"]
        return _not_executed(base, match["prog"], match["why"], missing=missing)
    return _setup_failure(base, shown)


def _truncation_note(outcome: runner.RunOutcome, out_cut: bool, err_cut: bool) -> str:
    parts = [
        f"{name} ({captured.total} bytes)"
        for name, captured, cut in (
            ("stdout", outcome.stdout, out_cut),
            ("stderr", outcome.stderr, err_cut),
        )
        if cut
    ]
    if not parts:
        return ""
    limits = f"{runner.MAX_LINES} lines / {runner.MAX_BYTES // 1024} KiB per stream"
    return f"; output truncated to {limits}: {', '.join(parts)}"


def sandbox_shell(configured: Path | None) -> str | None:
    """A POSIX shell the sandbox can run (it sees only /usr): the configured one, else the
    system's /bin/sh; None if it does not live under /usr."""
    candidate = str(configured) if configured is not None else "/bin/sh"
    real = os.path.realpath(candidate)
    if real.startswith("/usr/") and os.access(real, os.X_OK):
        return real
    return None
