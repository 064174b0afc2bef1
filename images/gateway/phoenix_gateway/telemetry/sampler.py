"""One sampler per process, shared by every stream: psutil is read once per interval.

``psutil.cpu_percent(interval=None)`` measures since its previous call, process
wide, so per-client sampling would skew each client's figures; one loop samples
and every subscriber receives the same point. The first point is taken
``FIRST_SAMPLE_SECONDS`` after start (CPU usage needs a window to measure over),
and a new stream is sent the latest point at once, as the original's first
event was, instead of waiting a whole interval for the next.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

import psutil

FIRST_SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Sample:
    """The original's ``metrics`` event payload; memory figures are bytes."""

    ts_ms: int
    cpu_percent: float
    mem_total: int
    mem_used: int
    mem_free: int
    process_count: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def read_sample() -> Sample:
    per_cpu = psutil.cpu_percent(interval=None, percpu=True)
    memory = psutil.virtual_memory()
    used = memory.total - memory.available
    return Sample(
        ts_ms=int(time.time() * 1000),
        cpu_percent=round(sum(per_cpu) / len(per_cpu), 2) if per_cpu else 0.0,
        mem_total=memory.total,
        mem_used=used,
        mem_free=memory.total - used,
        process_count=len(psutil.pids()),
    )


class Sampler:
    """Samples every ``interval`` seconds while running; subscribers wait for the next point."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.latest: Sample | None = None
        self._tick = asyncio.Event()

    async def run(self) -> None:
        psutil.cpu_percent(interval=None, percpu=True)  # the first reading is a baseline
        delay = min(self.interval, FIRST_SAMPLE_SECONDS)
        while True:
            await asyncio.sleep(delay)
            delay = self.interval
            # On the loop, not a worker thread: a read takes a few milliseconds every
            # interval, and a thread (with its own malloc arena) costs this 32 MiB
            # process about a megabyte of resident memory for nothing.
            self.latest = read_sample()
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()

    async def first(self) -> Sample:
        """The latest point, or the first one once it is taken."""
        if self.latest is None:
            await self._tick.wait()
        assert self.latest is not None
        return self.latest

    async def next(self) -> Sample:
        """The next point taken from now on."""
        await self._tick.wait()
        assert self.latest is not None
        return self.latest
