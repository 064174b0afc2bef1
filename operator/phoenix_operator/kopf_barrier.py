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

kopf is pinned (pyproject.toml); ``install`` checks the internals it patches and
leaves kopf as it is (with a warning) when they are not what it expects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kopf._cogs.aiokits import aiotoggles

logger = logging.getLogger(__name__)

_PATCHED = "_phoenix_notifies_on_flip"


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


def install() -> bool:
    """Make kopf's ToggleSet notify on flips only; False (kopf unchanged) if it looks different."""
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
