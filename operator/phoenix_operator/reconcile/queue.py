"""A work queue of twins, as controller-runtime's: requests for one twin coalesce, N workers.

Any number of requests for a twin that arrive while it waits (a burst of child
watch events, a resync tick, its own change handler) become one reconcile; a
request arriving while it runs queues exactly one more, which then sees every
change. One twin is never reconciled twice at once, and at most ``workers``
twins are reconciled at a time: that bounds memory and API load when 1,000 twins
change together (kopf's own ``queueing.worker_limit`` would instead throttle the
watch streams of every kind, the children's included).

A request may ask to *settle* first, as child watch events do: the twin is queued
only once no further request for it came for ``settle`` seconds (and at most
``SETTLE_CAP`` times that after the first), so a burst of edits spread over time
(``kubectl annotate`` of five ConfigMaps, one process after another) is still one
reconcile. Any request without a settle time queues the twin at once.

A request that queues at once names the reconcile (its trigger: an update's must
check Qdrant even if a child's event asked first). A reconcile that asks to be
retried (``retry_after``: a dependency failed) is requested again after that delay,
as a settling request that any other request for the twin brings forward. The
reconciler grows the delay with each consecutive failure, so a failing twin is
never reconciled in a hot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from phoenix_operator.reconcile.children import TwinKey
from phoenix_operator.reconcile.state import ReconcileResult

logger = logging.getLogger(__name__)

Reconcile = Callable[[TwinKey, str], Awaitable[ReconcileResult]]


SETTLE_CAP = 5  # a twin whose children never stop changing is still reconciled
RETRY_TRIGGER = "retry"  # what a reconcile the queue retries by itself is counted as


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The loop's time and timers (tests pass one they advance by hand)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer: ...


class _LoopClock:
    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_at(when, callback)


@dataclass
class _Request:
    trigger: str
    # While settling: when the first request came, and the timer that queues the twin.
    first: float = 0.0
    timer: Timer | None = None


class ReconcileQueue:
    """Twins waiting for a reconcile, in arrival order, each at most once."""

    def __init__(self, reconcile: Reconcile, *, workers: int, clock: Clock | None = None) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._clock = clock or _LoopClock()
        self._pending: dict[TwinKey, _Request] = {}
        self._queue: asyncio.Queue[TwinKey] = asyncio.Queue()
        self._running: set[TwinKey] = set()
        self._parked: set[TwinKey] = set()  # requested while running: queued when it ends
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for request in self._pending.values():
            if request.timer is not None:
                request.timer.cancel()
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)

    def request(self, key: TwinKey, trigger: str, *, settle: float = 0.0) -> bool:
        """Ask for a reconcile of ``key``; False when one is already waiting (coalesced).

        With ``settle``, the twin is queued once requests for it have been quiet for that
        long (see the module doc); without, at once.
        """
        request = self._pending.get(key)
        if request is not None:
            if settle <= 0:
                request.trigger = trigger
            if request.timer is not None:  # still settling
                if settle > 0:
                    self._settle(key, request, settle)
                else:
                    self._enqueue(key)
            return False
        request = self._pending[key] = _Request(trigger)
        if settle > 0:
            request.first = self._clock.time()
            self._settle(key, request, settle)
        else:
            self._queue.put_nowait(key)
        return True

    def _settle(self, key: TwinKey, request: _Request, settle: float) -> None:
        if request.timer is not None:
            request.timer.cancel()
        due = min(self._clock.time() + settle, request.first + settle * SETTLE_CAP)
        request.timer = self._clock.call_at(due, lambda: self._enqueue(key))

    def _enqueue(self, key: TwinKey) -> None:
        request = self._pending.get(key)
        if request is None or request.timer is None:
            return
        request.timer.cancel()
        request.timer = None
        self._queue.put_nowait(key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            if key in self._running:  # its previous reconcile is still on: go after it
                self._parked.add(key)
                continue
            request = self._pending.pop(key)
            self._running.add(key)
            try:
                await self._run(key, request)
            finally:
                self._running.discard(key)
                if key in self._parked:
                    self._parked.discard(key)
                    self._queue.put_nowait(key)

    async def _run(self, key: TwinKey, request: _Request) -> None:
        try:
            result = await self._reconcile(key, request.trigger)
        except Exception:  # one twin's failure must not end the worker. The reconciler
            # turns failures into results; this is a bug: logged, and the resync retries.
            logger.exception("reconcile failed", extra={"twin": "/".join(key)})
            return
        # A retry is a request that settles for the delay; one already waiting (it came
        # while this reconcile ran) comes after it anyway and sees the same.
        if result.retry_after is not None and key not in self._pending:
            self.request(key, RETRY_TRIGGER, settle=result.retry_after)
