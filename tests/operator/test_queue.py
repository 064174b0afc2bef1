"""The reconcile queue: a burst of requests for one twin costs one reconcile, never two at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from phoenix_operator.reconcile.children import TwinKey
from phoenix_operator.reconcile.queue import ReconcileQueue
from phoenix_operator.reconcile.state import ReconcileResult


class Recorder:
    """A reconcile that records its calls and waits for the test to let it finish."""

    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing  # each result asks for a retry after (number of calls) s
        self.calls: list[tuple[TwinKey, str]] = []
        self.running: set[TwinKey] = set()
        self.overlapped = False
        self.release = asyncio.Event()

    async def __call__(self, key: TwinKey, trigger: str) -> ReconcileResult:
        self.overlapped |= key in self.running
        self.running.add(key)
        self.calls.append((key, trigger))
        await self.release.wait()
        self.running.discard(key)
        return ReconcileResult(retry_after=float(len(self.calls)) if self.failing else None)


async def settle(queue: ReconcileQueue) -> None:
    """Yield to the workers until nothing waits or runs (no timing involved)."""
    while len(queue) or queue._running:  # noqa: ASYNC110 - polling private state on purpose
        await asyncio.sleep(0)


async def test_a_burst_of_requests_for_a_waiting_twin_is_one_reconcile() -> None:
    run = Recorder()
    run.release.set()
    queue = ReconcileQueue(run, workers=1)
    accepted = [queue.request(("ns", "a"), "child") for _ in range(20)]
    queue.start()
    await settle(queue)
    await queue.stop()
    assert accepted == [True] + [False] * 19
    assert run.calls == [(("ns", "a"), "child")]


async def test_a_request_during_a_reconcile_runs_exactly_once_more_afterwards() -> None:
    run = Recorder()
    queue = ReconcileQueue(run, workers=4)
    queue.start()
    queue.request(("ns", "a"), "child")
    while not run.calls:  # noqa: ASYNC110 - yields to the worker, no timing involved
        await asyncio.sleep(0)
    for _ in range(10):  # arrive while the first reconcile is still on
        queue.request(("ns", "a"), "child")
    run.release.set()
    await settle(queue)
    await queue.stop()
    assert run.calls == [(("ns", "a"), "child")] * 2
    assert not run.overlapped


async def test_a_request_that_queues_at_once_names_the_reconcile_it_joins() -> None:
    """An update arriving while a child's request settles: the reconcile is the update's
    (it checks Qdrant, which a child's reconcile skips)."""
    run = Recorder()
    run.release.set()
    clock = ManualClock()
    queue = ReconcileQueue(run, workers=1, clock=clock)
    queue.start()
    assert queue.request(("ns", "a"), "child", settle=1.0)
    assert not queue.request(("ns", "a"), "update")
    assert not queue.request(("ns", "a"), "child", settle=1.0)  # a settling one does not
    await settle(queue)
    await queue.stop()
    assert run.calls == [(("ns", "a"), "update")]


async def test_workers_bound_how_many_twins_reconcile_at_once() -> None:
    run = Recorder()
    queue = ReconcileQueue(run, workers=3)
    queue.start()
    for i in range(10):
        queue.request(("ns", f"t{i}"), "resync")
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(run.running) == 3
    run.release.set()
    await settle(queue)
    await queue.stop()
    assert len(run.calls) == 10


class ManualClock:
    """Time that moves only when the test says; timers fire as it passes them."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[ManualTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> ManualTimer:
        timer = ManualTimer(when, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in [t for t in self.timers if t.when <= self.now and not t.cancelled]:
            timer.cancelled = True
            timer.callback()


@dataclass
class ManualTimer:
    when: float
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


async def test_child_events_spread_over_time_settle_into_one_reconcile() -> None:
    """kubectl annotating five ConfigMaps one after another: events 0.4 s apart, one reconcile."""
    run = Recorder()
    run.release.set()
    clock = ManualClock()
    queue = ReconcileQueue(run, workers=2, clock=clock)
    queue.start()
    accepted = []
    for _ in range(5):
        accepted.append(queue.request(("ns", "a"), "child", settle=1.0))
        clock.advance(0.4)
        await settle_workers()
    assert run.calls == []  # still settling: each event pushed the deadline on
    clock.advance(1.0)
    await settle(queue)
    await queue.stop()
    assert accepted == [True, False, False, False, False]
    assert run.calls == [(("ns", "a"), "child")]


async def test_a_twin_whose_children_never_quiet_down_is_still_reconciled() -> None:
    run = Recorder()
    run.release.set()
    clock = ManualClock()
    queue = ReconcileQueue(run, workers=1, clock=clock)
    queue.start()
    for _ in range(30):  # an event every 0.5 s for 15 s, with a 1 s settle time
        queue.request(("ns", "a"), "child", settle=1.0)
        clock.advance(0.5)
        await settle_workers()
    await settle(queue)
    await queue.stop()
    # Capped at 5 s after the first event of each burst: 15 s of events, 3 reconciles.
    assert run.calls == [(("ns", "a"), "child")] * 3


async def test_a_request_without_settle_queues_a_settling_twin_at_once() -> None:
    run = Recorder()
    run.release.set()
    clock = ManualClock()
    queue = ReconcileQueue(run, workers=1, clock=clock)
    queue.start()
    assert queue.request(("ns", "a"), "child", settle=30.0)
    await settle_workers()
    assert run.calls == []
    assert not queue.request(("ns", "a"), "resync")  # coalesced, and queued now
    await settle(queue)
    assert run.calls == [(("ns", "a"), "resync")]  # the request that queued it names it
    clock.advance(60)  # the cancelled settle timer does not queue it again
    await settle(queue)
    await queue.stop()
    assert len(run.calls) == 1


async def settle_workers() -> None:
    """Let queued work start (workers run only when the test yields)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def after_one_failure() -> tuple[Recorder, ManualClock, ReconcileQueue]:
    """A started queue whose one twin's first reconcile (``resume``) failed: its retry waits."""
    run = Recorder(failing=True)
    run.release.set()
    clock = ManualClock()
    queue = ReconcileQueue(run, workers=1, clock=clock)
    queue.start()
    queue.request(("ns", "a"), "resume")
    await settle_workers()
    assert run.calls == [(("ns", "a"), "resume")]
    return run, clock, queue


async def test_a_failed_reconcile_is_retried_after_its_delay() -> None:
    """A reconcile that failed (any trigger): again after its retry_after, not before."""
    run, clock, queue = await after_one_failure()  # retry after 1 s, then 2 s, ...
    assert len(queue) == 1  # the retry waits
    clock.advance(0.9)
    await settle_workers()
    assert len(run.calls) == 1
    clock.advance(0.1)
    await settle_workers()
    assert run.calls == [(("ns", "a"), "resume"), (("ns", "a"), "retry")]
    clock.advance(1.9)  # the second failure asked for 2 s
    await settle_workers()
    assert len(run.calls) == 2
    clock.advance(0.1)
    await settle_workers()
    assert len(run.calls) == 3
    run.failing = False  # it succeeds now: nothing more is scheduled
    clock.advance(3.0)
    await settle_workers()
    assert len(run.calls) == 4
    clock.advance(600)
    await settle_workers()
    await queue.stop()
    assert len(run.calls) == 4
    assert len(queue) == 0


async def test_a_waiting_retry_is_brought_forward_by_a_new_request_and_runs_once() -> None:
    run, clock, queue = await after_one_failure()
    run.failing = False
    assert not queue.request(("ns", "a"), "resync")  # joins the waiting retry, queued now
    await settle_workers()
    assert run.calls == [(("ns", "a"), "resume"), (("ns", "a"), "resync")]
    clock.advance(60)  # the retry's own timer was cancelled: no third reconcile
    await settle_workers()
    await queue.stop()
    assert len(run.calls) == 2


async def test_stopping_the_queue_drops_a_waiting_retry() -> None:
    _, clock, queue = await after_one_failure()
    assert len(queue) == 1  # the retry waits on its timer
    assert clock.timers
    await queue.stop()
    assert len(queue) == 0
    assert all(timer.cancelled for timer in clock.timers)
