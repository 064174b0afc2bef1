"""Every watched object without ``metadata.managedFields``, from the moment kopf receives it.

The API server sends each object with its field-ownership records: for the
children the operator writes with server-side apply, one entry per field the
operator set (about as large as the object's spec), plus one per controller that
writes its status. Nothing in the operator reads them, nor does kopf (its
progress and diff-base live in annotations; it patches with merge patches), yet
kopf keeps each object's body alive while it handles it, and after a restart it
keeps *every* watched object's body alive at once: each object's worker indexes
its object, then waits at the index barrier until all objects of all kinds are
indexed (see ``kopf_barrier``). With ~21 children per twin that peak is what a
restarted operator's RSS stays at, as the heap it grew to is not given back.

``install`` wraps kopf's ``continuous_watch`` (the one source of the initial
list's objects and of every watch event) so each object arrives without them.
kopf is pinned (pyproject.toml); ``install`` checks what it wraps and leaves
kopf as it is (with a warning) when it is not what it expects.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import watching

logger = logging.getLogger(__name__)

_PATCHED = "_phoenix_without_managed_fields"


def without_managed_fields(event: Any) -> Any:
    """The raw watch event (or a bookmark, as it is) with its object's managedFields dropped."""
    if isinstance(event, dict):
        obj = event.get("object")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
    return event


def _wrap(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        async for event in original(**kwargs):
            yield without_managed_fields(event)

    setattr(continuous_watch, _PATCHED, original)
    return continuous_watch


def install() -> bool:
    """Make kopf's watches drop managedFields; False (kopf unchanged) if it looks different."""
    current = getattr(watching, "continuous_watch", None)
    if current is None:
        logger.warning("kopf's continuous_watch is not there: managedFields kept")
        return False
    if getattr(current, _PATCHED, None) is not None:
        return True
    params = inspect.signature(current).parameters
    if (
        not inspect.isasyncgenfunction(current)
        or not {
            "settings",
            "resource",
            "namespace",
        }
        <= params.keys()
        or any(p.kind is not p.KEYWORD_ONLY for p in params.values())
    ):
        logger.warning("kopf's continuous_watch is not the one expected: managedFields kept")
        return False
    watching.continuous_watch = _wrap(current)
    return True
