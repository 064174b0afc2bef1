"""kopf's index barrier with kopf_barrier installed: the same waits, linear wake-ups."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable

from kopf._cogs.aiokits.aiotoggles import Toggle, ToggleSet
from kopf._core.reactor import processing

from phoenix_operator import kopf_barrier

OBJECTS = 300
WAITERS = 300


class CountingAll:
    """``all``, counting how often kopf's waiters re-check the set."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, states: Iterable[bool]) -> bool:
        self.calls += 1
        return all(states)


async def test_the_barrier_opens_only_when_every_object_is_indexed_and_wakes_each_waiter_once() -> (
    None
):
    assert kopf_barrier.install()
    check = CountingAll()
    barrier = ToggleSet(check)
    toggles = [await barrier.make_toggle(name=f"object-{i}") for i in range(OBJECTS)]
    waiters = [asyncio.create_task(barrier.wait_for(True)) for _ in range(WAITERS)]
    await asyncio.sleep(0)
    for toggle in toggles[:-1]:
        await barrier.drop_toggle(toggle)
        await asyncio.sleep(0)  # let any woken waiter run, as kopf's workers would
    assert not any(w.done() for w in waiters)  # one object still not indexed: all still wait
    calls_while_closed = check.calls

    await barrier.drop_toggle(toggles[-1])
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)
    # kopf's own notify-on-every-change re-checks every waiter on every drop (~OBJECTS x
    # WAITERS, 90,300 here); now each make and drop costs two checks, each waiter one.
    assert calls_while_closed <= 2 * 2 * OBJECTS + WAITERS
    assert check.calls - calls_while_closed <= 2 + 2 * WAITERS


async def test_adding_an_object_to_an_open_barrier_closes_it_for_new_waiters() -> None:
    assert kopf_barrier.install()
    barrier = ToggleSet(all)
    await barrier.wait_for(True)  # empty: open
    closed = asyncio.create_task(barrier.wait_for(False))
    await asyncio.sleep(0)
    toggle = await barrier.make_toggle()
    await asyncio.wait_for(closed, timeout=5)  # the flip to closed woke its waiter
    opened = asyncio.create_task(barrier.wait_for(True))
    await asyncio.sleep(0)
    assert not opened.done()
    await barrier.drop_toggles([toggle])
    await asyncio.wait_for(opened, timeout=5)


async def test_turning_a_toggle_on_still_wakes_the_set_and_the_toggle_waiters() -> None:
    assert kopf_barrier.install()
    barrier = ToggleSet(any)  # as kopf's operator_paused: on when any peering pauses it
    toggle = await barrier.make_toggle(False)
    paused = asyncio.create_task(barrier.wait_for(True))
    toggle_on = asyncio.create_task(toggle.wait_for(True))
    await asyncio.sleep(0)
    assert not paused.done()
    assert not toggle_on.done()
    await toggle.turn_to(True)
    await asyncio.wait_for(asyncio.gather(paused, toggle_on), timeout=5)


def test_install_is_idempotent() -> None:
    assert kopf_barrier.install()
    assert kopf_barrier.install()


class Kind:
    """kopf's Resource as the processing sees it: group and plural."""

    def __init__(self, group: str, plural: str) -> None:
        self.group = group
        self.plural = plural


async def kopf_processing(
    *,
    resource: Kind,
    raw_event: dict[str, object],
    resource_indexed: Toggle | None = None,
    operator_indexed: ToggleSet | None = None,
) -> str:
    """The barrier's two steps exactly as kopf's process_resource_event takes them."""
    if operator_indexed is not None and resource_indexed is not None:
        await operator_indexed.drop_toggle(resource_indexed)
    if operator_indexed is not None:
        await operator_indexed.wait_for(True)
    return f"handled {raw_event['type']}"


async def test_a_listed_child_passes_once_indexed_while_twins_and_changes_still_wait() -> None:
    assert kopf_barrier.install([("apps", "deployments")])
    process = kopf_barrier._without_waiting_when_listed(kopf_processing)
    barrier = ToggleSet(all)
    still_listing = await barrier.make_toggle(name="secrets still being listed")
    child = await barrier.make_toggle(name="child")
    twin = await barrier.make_toggle(name="twin")
    changed = await barrier.make_toggle(name="changed")
    listed_child = await asyncio.wait_for(
        process(resource=Kind("apps", "deployments"), raw_event={"type": None},
                resource_indexed=child, operator_indexed=barrier),
        timeout=5,
    )  # fmt: skip
    assert listed_child == "handled None"  # returned while the barrier is closed
    assert child not in barrier._toggles  # but it counts as indexed
    waiting = [
        asyncio.create_task(process(resource=Kind("phoenixtwin.io", "phoenixtwins"),
                                    raw_event={"type": None}, resource_indexed=twin,
                                    operator_indexed=barrier)),
        asyncio.create_task(process(resource=Kind("apps", "deployments"),
                                    raw_event={"type": "MODIFIED"}, resource_indexed=changed,
                                    operator_indexed=barrier)),
    ]  # fmt: skip
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    assert not barrier.is_on()
    await barrier.drop_toggle(still_listing)
    assert await asyncio.wait_for(asyncio.gather(*waiting), timeout=5) == [
        "handled None",
        "handled MODIFIED",
    ]


async def test_after_the_barrier_opened_kopf_passes_no_barrier_and_nothing_changes() -> None:
    assert kopf_barrier.install([("apps", "deployments")])
    process = kopf_barrier._without_waiting_when_listed(kopf_processing)
    handled = await asyncio.wait_for(
        process(resource=Kind("apps", "deployments"), raw_event={"type": None}), timeout=5
    )
    assert handled == "handled None"


def test_kopf_processing_is_wrapped_once_and_still_takes_what_kopf_passes() -> None:
    assert kopf_barrier.install([("apps", "deployments")])
    assert kopf_barrier.install([("", "configmaps")])
    wrapped = processing.process_resource_event
    assert getattr(wrapped, "_phoenix_listed_without_waiting", False)
    assert kopf_barrier._listed_without_waiting == {("", "configmaps")}  # the last install's
    original = inspect.unwrap(wrapped)
    assert original is not wrapped
    assert not getattr(original, "_phoenix_listed_without_waiting", False)  # wrapped once
