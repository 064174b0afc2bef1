"""Pieces every rendered child shares: metadata, the owner reference, hashes, security contexts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from phoenix_common.naming import Tenancy
from phoenix_operator import naming
from phoenix_operator.api import API_VERSION, KIND, Twin

Manifest = dict[str, Any]


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs besides the twin: operator-wide defaults, passed in (never read)."""

    image_prefix: str = "ghcr.io/phoenixtwin/phoenix-"
    image_tag: str = "0.1.0"
    default_qdrant_url: str = "http://qdrant.phoenix-system.svc:6334"
    default_qdrant_tenancy: Tenancy = "collection"


def stable_hash(value: Any, length: int = 16) -> str:
    """A short SHA-256 of ``value``'s canonical JSON: equal inputs, equal hashes, any process."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def owner_reference(twin: Twin) -> dict[str, Any]:
    """Makes the twin the controller of a child, so KCM's garbage collector deletes it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": twin.name,
        "uid": twin.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    twin: Twin, name: str, labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": twin.namespace,
        "labels": labels if labels is not None else naming.twin_labels(twin),
        "ownerReferences": [owner_reference(twin)],
        **extra,
    }


def restricted_pod_security() -> dict[str, Any]:
    """Pod-level settings the `restricted` Pod Security Standard requires (non-root, seccomp)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def bwrap_pod_security() -> dict[str, Any]:
    """A non-root pod in its own user namespace: what bubblewrap needs (sandbox.md §4.2 A)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
    }


def bwrap_container_security() -> dict[str, Any]:
    """bwrap creates user, mount and pid namespaces and mounts a fresh /proc.

    RuntimeDefault seccomp refuses the unprivileged clone/unshare it needs and the
    masked /proc makes the kernel refuse a new procfs, hence Unconfined seccomp
    and AppArmor and an Unmasked procMount (which requires hostUsers: false).
    No capability is added and privilege escalation stays off.
    """
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "procMount": "Unmasked",
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
    }
