"""runner: exit status read without reaping, and the process group killed after its leader.

The leader stays a zombie until ``discard`` (or ``release``) has killed its group, so
the group id (its pid) cannot have been handed to another process in between.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from phoenix_tools import runner

KILL_BYTES = 1 << 20


def _state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie), or None once it is gone (reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def _start(script: str) -> runner.Started:
    spec = runner.SpawnSpec(argv=["/bin/sh", "-c", script], env={}, cwd=None)
    return runner.start(spec, kill_bytes=KILL_BYTES)


async def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Gone or a zombie: killed (a zombie's parent, init here, reaps it in its own time)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while _state(pid) not in (None, "Z"):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.fixture(params=["pidfd", "polling"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of noticing the exit: a pidfd, and polling where pidfd_open fails."""
    if request.param == "polling":

        def refused(_: int) -> int:
            raise OSError("pidfd_open filtered")

        monkeypatch.setattr(os, "pidfd_open", refused)
    return str(request.param)


async def test_the_exit_status_is_read_and_the_leader_reaped_only_by_discard(
    exit_watch: str,
) -> None:
    started = _start("exit 3")
    assert await started.until(lambda: not started.alive, 10)
    assert started.returncode == 3
    assert _state(started.proc.pid) == "Z"  # exited, unreaped: its pid is still taken
    await runner.discard(started)
    assert _state(started.proc.pid) is None
    assert started.proc.returncode == 3


async def test_a_signal_is_reported_as_popen_reports_it(exit_watch: str) -> None:
    outcome = await runner.finish(_start("kill -TERM $$"), timeout_s=10)
    assert outcome.returncode == -15
    assert runner.exit_code_of(outcome.returncode) == 143


async def test_what_let_go_of_the_pipes_dies_with_the_command(exit_watch: str) -> None:
    # The child closes its output, so nothing holds the pipes once the shell has exited.
    started = _start("(exec >/dev/null 2>&1; sleep 60) & echo $!")
    outcome = await runner.finish(started, timeout_s=10)
    assert outcome.returncode == 0
    left = int(bytes(outcome.stdout.head).decode())
    assert await _gone(left)
    assert _state(started.proc.pid) is None  # and the leader is reaped


async def test_a_timed_out_command_and_its_children_are_killed(exit_watch: str) -> None:
    started = _start("sleep 60 & echo $!; sleep 60")
    outcome = await runner.finish(started, timeout_s=0.5)
    assert outcome.timed_out
    assert outcome.returncode == -9
    assert await _gone(int(bytes(outcome.stdout.head).decode()))


async def test_discard_after_reaping_signals_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once reaped, the pid may belong to anyone: a repeated discard sends no signal."""
    started = _start("exit 0")
    assert await started.until(lambda: not started.alive, 10)
    await runner.discard(started)
    assert started.proc.returncode == 0
    signalled: list[int] = []
    monkeypatch.setattr(os, "killpg", lambda pgid, _: signalled.append(pgid))
    await runner.discard(started)
    started.kill_group()
    assert signalled == []
