"""kopf's index barrier at start-up, made linear in the number of watched objects.

Before any resource handler runs, kopf waits until every object of every indexed
kind has been indexed (the guarantee the operator relies on after a restart). It
does so with one ``ToggleSet`` (``operator_indexed``): one toggle per object not
yet indexed, and every object's worker waiting on the set's one
``asyncio.Condition`` once it has indexed its object. kopf 1.45's
``make_toggle``/``drop_toggle`` call ``notify_all()`` on every change, so each of
the N objects added and then dropped wakes every worker already waiting; each
woken worker re-takes the lock, re-checks and sleeps again. That is O(N²) task
switches: with ~21 children per twin, 100 twins (2,200 objects) spent about half
of a restart's CPU there, and 1,000 twins would spend most of an hour.

The waiters only care whether the *set* is on, and adding or dropping a toggle
changes no single toggle's state, so notifying only when the set's state flips
wakes exactly the same waiters at the moments that matter, once each. That is
what ``install`` makes ``make_toggle``/``drop_toggle``/``drop_toggles`` do. The
rest of kopf is untouched; ``Toggle.turn_to`` still notifies on every change.

Second, *who* waits. After a restart each listed object's worker indexes its object
and then waits at the barrier, holding the object, its kopf body, patch and three
loggers, until every object of every kind is indexed: at 1,000 twins ~22,000 workers
at once, the restart's memory peak (docs/operator.md, *Memory*), which the heap then
keeps. For the kinds given to ``install`` (the operator's children) an object from
the initial listing drops its toggle as before (the barrier still counts it, so no
twin handler runs before every child is indexed) but does not wait: its only
non-index handler (``handlers.child_changed``) ignores a child whose twin this
process has not reconciled yet, and before the barrier opens no twin has been. A
later event of the same child (a change while the barrier is still closed) waits as
kopf would have it wait.

kopf is pinned (pyproject.toml); ``install`` checks the internals it patches and
leaves kopf as it is (with a warning) when they are not what it expects.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles
from kopf._core.reactor import processing

logger = logging.getLogger(__name__)

_PATCHED = "_phoenix_notifies_on_flip"
_PROCESSING_PATCHED = "_phoenix_listed_without_waiting"

ResourceKey = tuple[str, str]  # (group, plural); "" is the core group, as in kopf's Resource

# The kinds of the last ``install``: one operator per process, as kopf itself is.
_listed_without_waiting: set[ResourceKey] = set()


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggles(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


class _IndexedWithoutWaiting:
    """``operator_indexed`` as the processing of one listed object of such a kind sees it:
    the object's toggle is dropped from the real set, and the wait returns at once."""

    def __init__(self, barrier: aiotoggles.ToggleSet) -> None:
        self._barrier = barrier

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        await self._barrier.drop_toggle(toggle)

    async def wait_for(self, value: bool) -> None:
        return None


Processor = Callable[..., Coroutine[Any, Any, Any]]


def _without_waiting_when_listed(original: Processor) -> Processor:
    @functools.wraps(original)
    async def process_resource_event(**kwargs: Any) -> Any:
        resource = kwargs.get("resource")
        key = (getattr(resource, "group", None) or "", getattr(resource, "plural", None) or "")
        event = kwargs.get("raw_event")
        barrier = kwargs.get("operator_indexed")
        if (
            barrier is not None
            and key in _listed_without_waiting
            and isinstance(event, dict)
            and event.get("type") is None  # kopf's type for the initial list's objects
        ):
            kwargs["operator_indexed"] = _IndexedWithoutWaiting(barrier)
        return await original(**kwargs)

    setattr(process_resource_event, _PROCESSING_PATCHED, True)
    return process_resource_event


def _install_listing_pass(kinds: Iterable[ResourceKey]) -> bool:
    current = processing.process_resource_event
    if not getattr(current, _PROCESSING_PATCHED, False):
        expected = {"resource", "raw_event", "operator_indexed", "resource_indexed"}
        if not expected <= set(inspect.signature(current).parameters):
            logger.warning("kopf's process_resource_event is not the one expected: all wait")
            return False
        processing.process_resource_event = _without_waiting_when_listed(current)
    _listed_without_waiting.clear()
    _listed_without_waiting.update(kinds)
    return True


def install(listed_without_waiting: Iterable[ResourceKey] = ()) -> bool:
    """Make kopf's ToggleSet notify on flips only, and let the listed objects of the given
    kinds pass the barrier once indexed; False where kopf looks different (left as it is)."""
    toggles = _install_toggles()
    listing = _install_listing_pass(listed_without_waiting)
    return toggles and listing


def _install_toggles() -> bool:
    cls = aiotoggles.ToggleSet
    if getattr(cls, _PATCHED, False):
        return True
    probe = cls(all)
    expected = ("make_toggle", "drop_toggle", "drop_toggles", "is_on")
    if not (
        all(callable(getattr(cls, name, None)) for name in expected)
        and isinstance(getattr(probe, "_toggles", None), set)
        and getattr(probe, "_condition", None) is not None
    ):
        logger.warning("kopf's ToggleSet is not the one expected: index barrier left as it is")
        return False
    cls.make_toggle = _make_toggle  # type: ignore[method-assign]
    cls.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    cls.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    setattr(cls, _PATCHED, True)
    return True
