"""Build-like background load: what a Rust or C++ build does to a 2-core machine.

The failures this suite guards against appeared only while a build was running:
pure CPU spinning did not open their window. A build is many short processes
(fork/exec storms), CPU-bound compilers, and memory and IO pressure, so the load
is all four. Each generator runs in its own session (``setsid``): the kernel's
autogroup scheduler would otherwise put them in the test's group and shield
the processes under test from them. Each is started through
``setpriv --pdeathsig KILL`` so nothing outlives the test process, and
``BuildLoad.stop`` kills every group and checks that none is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# A compiler's CPU burn; a build system's fork/exec storm (each iteration forks and
# execs two programs, as `make` running `cc` does); page-cache and allocation churn.
SPIN = "while :; do :; done"
FORK_EXEC = "while :; do /bin/true; /bin/sh -c 'echo x >/dev/null'; done"
IO = (
    'while :; do dd if=/dev/zero of="$1/blob" bs=1M count=64 conv=fsync status=none; '
    'cat "$1/blob" >/dev/null; rm -f "$1/blob"; done'
)
MEMORY = (
    "import time\n"
    "while True:\n"
    "    block = bytearray(256 * 1024 * 1024)\n"
    "    for i in range(0, len(block), 4096):\n"
    "        block[i] = 1\n"
    "    del block\n"
    "    time.sleep(0.05)\n"
)


SURVIVOR_GRACE_S = 30.0


@dataclass
class BuildLoad:
    spinners: int = 2
    fork_storms: int = 2
    io_writers: int = 1
    memory_churners: int = 1
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    scratch: Path | None = None

    def start(self) -> BuildLoad:
        self.scratch = Path(tempfile.mkdtemp(prefix="phx-stress-load-"))
        python = shutil.which("python3") or "/usr/bin/python3"
        argvs = (
            [["/bin/sh", "-c", SPIN]] * self.spinners
            + [["/bin/sh", "-c", FORK_EXEC]] * self.fork_storms
            + [["/bin/sh", "-c", IO, "io", str(self.scratch)]] * self.io_writers
            + [[python, "-c", MEMORY]] * self.memory_churners
        )
        setpriv = shutil.which("setpriv")
        for argv in argvs:
            prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
            self.processes.append(
                subprocess.Popen(
                    [*prefix, *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        time.sleep(0.5)
        dead = [p.args for p in self.processes if p.poll() is not None]
        assert not dead, f"load generators died at once: {dead}"
        return self

    def __enter__(self) -> BuildLoad:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # unreaped leader: group id is ours
        for process in self.processes:
            process.wait(10)
        # A killed process dies only when it leaves the kernel: `dd conv=fsync` in an fsync (D
        # state) keeps running for as long as the flush takes. Give the SIGKILLed members that
        # long, bounded, before calling anything a survivor.
        deadline = time.monotonic() + SURVIVOR_GRACE_S
        while (
            leftovers := [pid for p in self.processes if (pid := _group_member(p.pid)) is not None]
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.processes.clear()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        assert not leftovers, f"load processes survived: {leftovers}"


def _group_member(pgid: int) -> int | None:
    """A live process still in process group ``pgid``, if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return int(entry.name)
    return None
