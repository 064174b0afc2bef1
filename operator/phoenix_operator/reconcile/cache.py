"""What the operator last saw of twins and their children, fed by watch events and applies.

Watch events and apply responses can arrive out of order; an object is only
replaced by a newer one (resourceVersions compared as etcd revisions, which is
what kube-apiserver hands out), so a late event never hides a newer apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix_operator import naming

TwinKey = tuple[str, str]  # (namespace, twin name)
ChildKey = tuple[str, str]  # (kind, name)


def _revision(body: Mapping[str, Any]) -> int | None:
    try:
        return int(body.get("metadata", {}).get("resourceVersion", ""))
    except (TypeError, ValueError):
        return None


def newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` should replace ``current`` (unknown revisions: yes)."""
    if current is None:
        return True
    new, old = _revision(candidate), _revision(current)
    return new is None or old is None or new >= old


def _compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """The object without managedFields (the bulk of it, and never read by the operator)."""
    meta = body.get("metadata", {})
    if "managedFields" not in meta:
        return dict(body)
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def twin_of(child: Mapping[str, Any]) -> TwinKey | None:
    meta = child.get("metadata", {})
    twin = (meta.get("labels") or {}).get(naming.TWIN_LABEL)
    if not twin:
        return None
    return str(meta.get("namespace", "")), str(twin)


class Cache:
    """Twins by (namespace, name); each twin's children by (kind, name)."""

    def __init__(self) -> None:
        self.twins: dict[TwinKey, dict[str, Any]] = {}
        self.children: dict[TwinKey, dict[ChildKey, dict[str, Any]]] = {}

    def put_twin(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if newer(body, self.twins.get(key)):
            self.twins[key] = _compact(body)

    def drop_twin(self, key: TwinKey) -> None:
        self.twins.pop(key, None)

    def put_child(self, body: Mapping[str, Any]) -> TwinKey | None:
        twin = twin_of(body)
        if twin is None:
            return None
        meta = body.get("metadata", {})
        children = self.children.setdefault(twin, {})
        key = (str(body.get("kind")), str(meta.get("name")))
        if newer(body, children.get(key)):
            children[key] = _compact(body)
        return twin

    def drop_child(self, body: Mapping[str, Any]) -> TwinKey | None:
        """Forget a deleted child, unless what is cached was written after the deletion."""
        twin = twin_of(body)
        if twin is None:
            return None
        children = self.children.get(twin, {})
        key = (str(body.get("kind")), str(body.get("metadata", {}).get("name")))
        current = children.get(key)
        if current is not None:
            kept, gone = _revision(current), _revision(body)
            if kept is None or gone is None or kept <= gone:
                del children[key]
        if not children:
            self.children.pop(twin, None)
        return twin

    def children_of(self, twin: TwinKey) -> dict[ChildKey, dict[str, Any]]:
        return self.children.get(twin, {})
