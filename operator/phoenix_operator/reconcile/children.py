"""Pure: what the operator keeps of each live child, and which children need a write.

The ``children`` kopf index (handlers.py) holds one ``LiveChild`` per labelled
child. It is deliberately small: the object's comparable content as one JSON
string (no managedFields, no status, no server bookkeeping), deflated, its
revision, its controller, its applied-hash and, for Deployments, the rollout
numbers status needs. A twin costs about 20 such records: ~7 KiB as deflated
JSON where the JSON text alone was ~28 KiB and nested dicts would be several
times that. Deflating one record costs ~20 µs with a small window and memory
level (zlib's defaults allocate ~256 KiB of state per call: ten times slower).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phoenix_operator import naming, render
from phoenix_operator.reconcile import drift
from phoenix_operator.render.common import Manifest

TwinKey = tuple[str, str]  # (namespace, twin name)
ChildKey = tuple[str, str]  # (kind, name) within the twin's namespace

# Applied in a second wave, after the ConfigMaps, Secret and ServiceAccount they read, so a
# Deployment never starts pods that wait for configuration that does not exist yet.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "PodDisruptionBudget"})
ROLLOUT_KINDS = frozenset({"Deployment", "StatefulSet"})

# Metadata the API server owns or changes on every write: never part of a comparison.
_KEPT_METADATA = ("name", "namespace", "labels", "annotations", "ownerReferences")

# Raw deflate, a 1 KiB window and the smallest memory level: the records are ~1 KiB of JSON.
_WINDOW_BITS = 10
_MEM_LEVEL = 2


def _deflate(text: str) -> bytes:
    packer = zlib.compressobj(1, zlib.DEFLATED, -_WINDOW_BITS, _MEM_LEVEL)
    return packer.compress(text.encode()) + packer.flush()


def _inflate(data: bytes) -> str:
    return zlib.decompress(data, -_WINDOW_BITS).decode()


@dataclass(frozen=True, slots=True)
class Rollout:
    """A workload's rollout as status reads it (spec replicas, status counts, config hash).

    Deployments and StatefulSets report the same status fields.
    """

    generation: int
    observed_generation: int
    replicas: int
    current_replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    config_hash: str

    @classmethod
    def from_deployment(cls, body: Mapping[str, Any]) -> Rollout:
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        template = (spec.get("template") or {}).get("metadata") or {}
        return cls(
            generation=int((body.get("metadata") or {}).get("generation", 1)),
            observed_generation=int(status.get("observedGeneration", 0)),
            replicas=int(spec.get("replicas", 1)),
            current_replicas=int(status.get("replicas", 0)),
            updated_replicas=int(status.get("updatedReplicas", 0)),
            ready_replicas=int(status.get("readyReplicas", 0)),
            available_replicas=int(status.get("availableReplicas", 0)),
            config_hash=str(
                (template.get("annotations") or {}).get(naming.CONFIG_HASH_ANNOTATION, "")
            ),
        )


@dataclass(frozen=True, slots=True)
class LiveChild:
    """One child as last seen by the watch (or returned by an apply)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    revision: int | None  # metadata.resourceVersion, an etcd revision on kube-apiserver
    controller_uid: str | None
    applied_hash: str | None
    content: bytes  # canonical JSON of the comparable part of the object, deflated
    rollout: Rollout | None = None

    @property
    def digest(self) -> int:
        """Equal for equal content within this process (status and revision do not count)."""
        return hash(self.content)

    @property
    def key(self) -> ChildKey:
        return self.kind, self.name

    def body(self) -> dict[str, Any]:
        """The comparable part of the object, decoded again (only when a comparison needs it)."""
        decoded: dict[str, Any] = json.loads(_inflate(self.content))
        return decoded


def _revision(meta: Mapping[str, Any]) -> int | None:
    try:
        return int(meta.get("resourceVersion", ""))
    except (TypeError, ValueError):
        return None


def _without_nulls(value: Any) -> Any:
    """``value`` without null fields: the API serves some (a pod template's creationTimestamp)
    that typed clients drop, and an apply response must compare equal to its watch event."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def live_child(body: Mapping[str, Any]) -> LiveChild:
    """Compact a child as served by the API (watch event or apply response)."""
    meta = body.get("metadata") or {}
    comparable = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    comparable["metadata"] = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    controller = next(
        (
            str(ref.get("uid"))
            for ref in meta.get("ownerReferences") or []
            if ref.get("controller") and ref.get("uid")
        ),
        None,
    )
    applied = (meta.get("annotations") or {}).get(naming.APPLIED_HASH_ANNOTATION)
    kind = str(body.get("kind", ""))
    return LiveChild(
        api_version=sys.intern(str(body.get("apiVersion", ""))),  # one copy, not one per child
        kind=sys.intern(kind),
        namespace=sys.intern(str(meta.get("namespace", ""))),
        name=str(meta.get("name", "")),
        revision=_revision(meta),
        controller_uid=controller,
        applied_hash=str(applied) if applied is not None else None,
        content=_deflate(
            json.dumps(_without_nulls(comparable), sort_keys=True, separators=(",", ":"))
        ),
        rollout=Rollout.from_deployment(body) if kind in ROLLOUT_KINDS else None,
    )


# The key under which a projected child carries its LiveChild. Not a Kubernetes field: it
# only exists in what kopf holds (kopf_bodies), never in anything sent to the API server.
LIVE_CHILD_FIELD = "phoenixtwin.io/live-child"

# What kopf reads of an object (identity, filters, finalizers, deletion, owners).
_PROJECTED_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
    "labels",
    "annotations",
    "ownerReferences",
)


def projected(body: Mapping[str, Any]) -> dict[str, Any]:
    """A child as kopf should hold it: its metadata and its LiveChild, no spec or status.

    The watch stream applies this to every child as it arrives (kopf_bodies), so kopf
    holds ~1 KiB per child where the full object was tens of KiB of nested dicts, and
    the index and event handlers read the LiveChild instead of compacting it each.
    """
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: meta[k] for k in _PROJECTED_METADATA if k in meta},
        LIVE_CHILD_FIELD: live_child(body),
    }


def of(body: Mapping[str, Any]) -> LiveChild:
    """A child's LiveChild: the one its projection carries, else compacted from the body."""
    carried = body.get(LIVE_CHILD_FIELD)
    return carried if isinstance(carried, LiveChild) else live_child(body)


def twin_of(body: Mapping[str, Any]) -> TwinKey | None:
    """The (namespace, twin) a child belongs to, from its twin label."""
    meta = body.get("metadata") or {}
    twin = (meta.get("labels") or {}).get(naming.TWIN_LABEL)
    if not twin:
        return None
    return str(meta.get("namespace", "")), str(twin)


def newest(children: Sequence[LiveChild]) -> dict[ChildKey, LiveChild]:
    """Children by (kind, name); of two records for one key the higher revision wins."""
    found: dict[ChildKey, LiveChild] = {}
    for child in children:
        current = found.get(child.key)
        if current is None or (child.revision or 0) >= (current.revision or 0):
            found[child.key] = child
    return found


def secret_value(body: Mapping[str, Any] | None, key: str) -> str | None:
    """A key of a Secret, decoded (None when absent or not valid base64 text)."""
    encoded = ((body or {}).get("data") or {}).get(key)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class ChildChanges:
    """The writes that bring a twin's children to its rendering; empty when converged."""

    apply_first: tuple[Manifest, ...] = ()
    apply_last: tuple[Manifest, ...] = ()  # WORKLOAD_KINDS, after what they read
    restored: frozenset[ChildKey] = frozenset()  # deleted or edited behind the operator's back
    prune: tuple[LiveChild, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.apply_first or self.apply_last or self.prune)


def compare(
    desired: Sequence[Manifest],
    live: Mapping[ChildKey, LiveChild],
    owner_uid: str,
    known: Collection[ChildKey] = (),
    in_flight: Mapping[ChildKey, str | None] | None = None,
) -> ChildChanges:
    """Which rendered children differ from the live ones, and which live ones to delete.

    ``known`` are children this process already saw converged: one of them missing
    was deleted behind the operator's back (a drift to report), not never created.
    ``in_flight`` were just written by this process (with these applied-hashes) and
    their watch event has not arrived yet: the index is older than the object, so one
    whose rendering is still what was written is not compared.
    """
    in_flight = in_flight or {}
    first: list[Manifest] = []
    last: list[Manifest] = []
    restored: set[ChildKey] = set()
    for manifest in desired:
        key = render.key(manifest)
        wanted_hash = manifest["metadata"]["annotations"][naming.APPLIED_HASH_ANNOTATION]
        if key in in_flight and in_flight[key] == wanted_hash:
            continue
        current = live.get(key)
        if current is not None and not drift.differences(manifest, current.body()):
            continue
        (last if manifest["kind"] in WORKLOAD_KINDS else first).append(manifest)
        if (current is None and key in known) or (
            current is not None and current.applied_hash == wanted_hash
        ):
            restored.add(key)
    wanted = {render.key(m) for m in desired}
    prune = tuple(
        child
        for key, child in sorted(live.items())
        if key not in wanted and key not in in_flight and child.controller_uid == owner_uid
    )
    return ChildChanges(tuple(first), tuple(last), frozenset(restored), prune)


def rendered(manifests: Sequence[Manifest]) -> list[Manifest]:
    """The manifests as applied: each with the hash of itself as an annotation."""
    return [drift.with_applied_hash(m) for m in manifests]
