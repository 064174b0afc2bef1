"""The Qdrant collection scheme shared by the memory service and the operator."""

from __future__ import annotations

import itertools
import random
import string

import pytest

from phoenix_common.errors import InvalidInput
from phoenix_common.naming import (
    TwinRef,
    collection_name,
    parse_collection_name,
    parse_tenant_key,
    shared_collection_name,
    tenant_key,
    validate_memory_namespace,
)


def test_a_collection_name_carries_tenant_and_memory_namespace() -> None:
    assert collection_name(TwinRef("team-a", "aegis"), "threat_intel_v24") == (
        "phx.team-a.aegis.threat_intel_v24"
    )


def test_an_empty_memory_namespace_means_default() -> None:
    assert collection_name(TwinRef("ns", "twin"), "") == "phx.ns.twin.default"


def test_names_of_different_tenants_never_collide() -> None:
    """Crafted so that naive joining would collide: dots and dashes in every position."""
    parts = ["a", "a-b", "b", "ab", "a-b-c", "b-c"]
    memory_namespaces = ["x", "x_y", "y", "b-x", "b.x", "a.b.x", "x.", "x..y", "b-c.x", "c.x"]
    seen: dict[str, tuple[str, str, str]] = {}
    keys: set[str] = set()
    for ns, twin, memory in itertools.product(parts, parts, memory_namespaces):
        name = collection_name(TwinRef(ns, twin), memory)
        assert name not in seen, f"{(ns, twin, memory)} collides with {seen[name]}"
        seen[name] = (ns, twin, memory)
        assert parse_collection_name(name) == (TwinRef(ns, twin), memory)
        key = tenant_key(TwinRef(ns, twin), memory)
        assert key not in keys
        keys.add(key)
        assert parse_tenant_key(key) == (TwinRef(ns, twin), memory)


def test_random_tenants_round_trip_through_both_encodings() -> None:
    """The encodings have exact inverses, so they are injective (no two tenants share one)."""
    rng = random.Random(14)
    label_chars = string.ascii_lowercase + string.digits + "-"
    memory_chars = string.ascii_letters + string.digits + "._-"

    def label() -> str:
        body = "".join(rng.choice(label_chars) for _ in range(rng.randint(0, 20)))
        return rng.choice(string.ascii_lowercase) + body.rstrip("-") if body else "a"

    for _ in range(2000):
        twin = TwinRef(label(), label())
        memory = rng.choice(string.ascii_letters) + "".join(
            rng.choice(memory_chars) for _ in range(rng.randint(0, 63))
        )
        assert parse_collection_name(collection_name(twin, memory)) == (twin, memory)
        assert parse_tenant_key(tenant_key(twin, memory)) == (twin, memory)


def test_dotted_memory_namespaces_of_the_original_are_accepted() -> None:
    assert validate_memory_namespace("threat.intel") == "threat.intel"
    assert collection_name(TwinRef("sec", "aegis"), "threat.intel") == "phx.sec.aegis.threat.intel"
    assert parse_collection_name("phx.sec.aegis.threat.intel") == (
        TwinRef("sec", "aegis"),
        "threat.intel",
    )


def test_names_from_before_dots_were_allowed_are_unchanged() -> None:
    """Existing collections keep working: a dot-free namespace encodes exactly as before."""
    assert collection_name(TwinRef("team-a", "sentinel"), "ops_2") == "phx.team-a.sentinel.ops_2"


def test_the_shared_collection_is_per_vector_size_and_never_a_tenant_collection() -> None:
    assert shared_collection_name(384) == "phx_shared_384"
    assert parse_collection_name(shared_collection_name(384)) is None
    with pytest.raises(InvalidInput):
        shared_collection_name(0)


@pytest.mark.parametrize(
    "bad",
    ["has/slash", "has space", "x" * 65, "-leading", ".leading", "..", ".", "emoji🙂", "a:b", 'q"'],
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
    assert parse_collection_name("phx.ns.twin..hidden") is None
    assert parse_tenant_key("ns/twin") is None
    assert parse_tenant_key("ns/twin/a/b") is None
