"""Pure: does a live child still match what the operator would apply?

A child needs an apply when a field the operator renders is missing or has
another value in the live object. Fields the API server adds (defaults,
status, clusterIP, ...) and fields other managers own are ignored. Fields the
operator stopped rendering are caught by the applied-hash annotation, which
every rendered child carries: a changed rendering changes the hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix_operator import naming
from phoenix_operator.render.common import Manifest, stable_hash


def with_applied_hash(manifest: Manifest) -> Manifest:
    """``manifest`` plus the hash of itself as an annotation (what is actually applied)."""
    digest = stable_hash(manifest)
    meta = manifest["metadata"]
    annotations = {**meta.get("annotations", {}), naming.APPLIED_HASH_ANNOTATION: digest}
    return {**manifest, "metadata": {**meta, "annotations": annotations}}


def _empty(value: Any) -> bool:
    return value in ({}, [], None, "")


def differences(desired: Any, live: Any, where: str = "") -> list[str]:
    """Paths where ``live`` does not contain ``desired``; empty means no apply is needed."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [] if _empty(desired) and live is None else [where or "."]
        found: list[str] = []
        for key, value in desired.items():
            if key not in live:
                if not _empty(value):
                    found.append(f"{where}.{key}")
                continue
            found += differences(value, live[key], f"{where}.{key}")
        return found
    if isinstance(desired, list):
        if live is None and not desired:
            return []
        if not isinstance(live, list) or len(live) != len(desired):
            return [where]
        found = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            found += differences(want, have, f"{where}[{index}]")
        return found
    return [] if desired == live else [where]
