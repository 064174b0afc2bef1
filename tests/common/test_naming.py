"""The Qdrant collection scheme shared by the memory service and the operator."""

from __future__ import annotations

import itertools

import pytest

from phoenix_common.errors import InvalidInput
from phoenix_common.naming import (
    TwinRef,
    collection_name,
    parse_collection_name,
    validate_memory_namespace,
)


def test_a_collection_name_carries_tenant_and_memory_namespace() -> None:
    assert collection_name(TwinRef("team-a", "aegis"), "threat_intel_v24") == (
        "phx.team-a.aegis.threat_intel_v24"
    )


def test_an_empty_memory_namespace_means_default() -> None:
    assert collection_name(TwinRef("ns", "twin"), "") == "phx.ns.twin.default"


def test_names_of_different_tenants_never_collide() -> None:
    parts = ["a", "a-b", "b", "ab", "a-b-c"]
    memory_namespaces = ["x", "x_y", "y", "b-x"]
    seen: dict[str, tuple[str, str, str]] = {}
    for ns, twin, memory in itertools.product(parts, parts, memory_namespaces):
        name = collection_name(TwinRef(ns, twin), memory)
        assert name not in seen, f"{(ns, twin, memory)} collides with {seen[name]}"
        seen[name] = (ns, twin, memory)
        assert parse_collection_name(name) == (TwinRef(ns, twin), memory)


@pytest.mark.parametrize(
    "bad",
    ["has.dot", "has/slash", "has space", "x" * 65, "-leading", "emoji🙂", "a:b", 'q"'],
)
def test_memory_namespaces_qdrant_would_refuse_or_that_could_collide_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput, match="namespace"):
        validate_memory_namespace(bad)


@pytest.mark.parametrize("bad", ["Upper", "under_score", "dot.ted", "", "x" * 64, "-a"])
def test_twin_refs_must_be_dns_labels(bad: str) -> None:
    with pytest.raises(InvalidInput, match="DNS label"):
        TwinRef("default", bad)


def test_foreign_collections_are_not_parsed_as_ours() -> None:
    assert parse_collection_name("qdrant_test") is None
    assert parse_collection_name("phx.ns.twin") is None
    assert parse_collection_name("phx.NS.twin.default") is None
