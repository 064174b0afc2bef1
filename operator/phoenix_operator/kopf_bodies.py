"""What kopf holds of each watched object: no ``managedFields``, and children projected.

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

So, like client-go's informer transform (``SetTransform``, controller-runtime's
``TransformStripManagedFields``), each object is reduced as it arrives, before
kopf queues it:

- every object loses ``metadata.managedFields``;
- a kind with a *projection* (``install``'s argument; the operator projects its
  children, see ``reconcile.children.projected``) is replaced by what that
  function returns: the metadata kopf reads plus whatever the handlers need, so
  kopf never holds a child's full spec and status at all.

``install`` wraps kopf's ``continuous_watch`` (the one source of the initial
list's objects and of every watch event). kopf is pinned (pyproject.toml);
``install`` checks what it wraps and leaves kopf as it is (with a warning) when
it is not what it expects. Handlers must therefore accept the full object too.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from kopf._cogs.clients import watching

logger = logging.getLogger(__name__)

_PATCHED = "_phoenix_without_managed_fields"

Projection = Callable[[dict[str, Any]], dict[str, Any]]
ResourceKey = tuple[str, str]  # (group, plural); "" is the core group, as in kopf's Resource

# The projections of the last ``install``: one operator per process, as kopf itself is.
_projections: dict[ResourceKey, Projection] = {}

# The events that carry an object (None: kopf's type for the initial list's objects).
_OBJECT_EVENTS = frozenset({None, "ADDED", "MODIFIED", "DELETED"})


def without_managed_fields(event: Any) -> Any:
    """The raw watch event (or a bookmark, as it is) with its object's managedFields dropped."""
    if isinstance(event, dict):
        obj = event.get("object")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
    return event


def reduced(event: Any, project: Projection | None) -> Any:
    """The event as kopf should hold it: managedFields dropped, then the object projected."""
    event = without_managed_fields(event)
    if (
        project is not None
        and isinstance(event, dict)
        and event.get("type") in _OBJECT_EVENTS
        and isinstance(event.get("object"), dict)
        and "uid" in (event["object"].get("metadata") or {})
    ):
        event["object"] = project(event["object"])
    return event


def _wrap(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs.get("resource")
        key = (getattr(resource, "group", None) or "", getattr(resource, "plural", None) or "")
        async for event in original(**kwargs):
            yield reduced(event, _projections.get(key))

    setattr(continuous_watch, _PATCHED, original)
    return continuous_watch


def install(projections: Mapping[ResourceKey, Projection] | None = None) -> bool:
    """Make kopf's watches drop managedFields and apply ``projections`` (by (group, plural)).

    False (kopf unchanged) if kopf's watch looks different from what this wraps.
    """
    current = getattr(watching, "continuous_watch", None)
    if current is None:
        logger.warning("kopf's continuous_watch is not there: objects kept whole")
        return False
    if getattr(current, _PATCHED, None) is None:
        params = inspect.signature(current).parameters
        if (
            not inspect.isasyncgenfunction(current)
            or not {"settings", "resource", "namespace"} <= params.keys()
            or any(p.kind is not p.KEYWORD_ONLY for p in params.values())
        ):
            logger.warning("kopf's continuous_watch is not the one expected: objects kept whole")
            return False
        watching.continuous_watch = _wrap(current)
    _projections.clear()
    _projections.update(projections or {})
    return True
