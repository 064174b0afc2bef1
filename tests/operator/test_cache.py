"""The cache keeps the newest version of each child, whatever order events arrive in."""

from __future__ import annotations

from typing import Any

from phoenix_operator.reconcile.cache import Cache


def child(name: str, revision: str, kind: str = "Deployment") -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "resourceVersion": revision,
            "labels": {"phoenixtwin.io/twin": "alice"},
        },
    }


def test_an_older_event_never_replaces_a_newer_apply() -> None:
    cache = Cache()
    cache.put_child(child("alice-memory", "20"))
    cache.put_child(child("alice-memory", "15"))
    cached = cache.children_of(("team-a", "alice"))[("Deployment", "alice-memory")]
    assert cached["metadata"]["resourceVersion"] == "20"


def test_a_deletion_forgets_the_child_unless_it_was_recreated_since() -> None:
    cache = Cache()
    cache.put_child(child("alice-memory", "20"))
    cache.drop_child(child("alice-memory", "18"))
    assert ("Deployment", "alice-memory") in cache.children_of(("team-a", "alice"))
    cache.drop_child(child("alice-memory", "21"))
    assert cache.children_of(("team-a", "alice")) == {}


def test_objects_without_the_twin_label_are_ignored() -> None:
    cache = Cache()
    stray = child("other", "1")
    stray["metadata"]["labels"] = {}
    assert cache.put_child(stray) is None
    assert cache.children == {}
