"""Tenant isolation on the real engines, in both tenancy modes.

Tenants A and B share one engine (one Qdrant server, or one Qdrant Edge data
directory); in payload mode they share one collection. Whatever A sends, a
query, a listing, a delete or a commit, it never sees or touches B's memories,
including with crafted namespace names, filters and payload-looking metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phoenix_common.errors import NotFound
from phoenix_common.naming import TENANT_FIELD, TWIN_FIELD, Tenancy, TwinRef, tenant_key
from phoenix_memory.archive import Archive
from phoenix_memory.model import ListRequest, MemoryFilter, MemoryQuery, NewMemory
from phoenix_memory.store.base import MemoryStore

from .conftest import Engine, SessionEmbedder, open_store, unique_twin
from .qdrant_server import QdrantEndpoint

MODES: list[tuple[Engine, Tenancy]] = [
    ("edge", "collection"),
    ("edge", "payload"),
    ("qdrant", "collection"),
    ("qdrant", "payload"),
]
SECRET = "the vault combination is 31-7-42"


@dataclass
class Pair:
    a: Archive
    b: Archive
    store: MemoryStore


# (A's twin, A's memory namespace, B's twin, B's memory namespace): neighbours by name.
def crafted_tenants() -> list[tuple[TwinRef, str, TwinRef, str]]:
    base = unique_twin("x")
    sibling = TwinRef(base.namespace, base.name + "-ops")
    return [
        (base, "ops", sibling, "ops"),  # twin names that prefix each other
        (base, "threat", base, "threat.intel"),  # the same twin, a dotted neighbour
        (base, "a.b", TwinRef(base.namespace, base.name), "a.b.c"),
        (TwinRef("a-b", base.name), "c", TwinRef("a", base.name), "b-c"),  # dash vs separator
    ]


@pytest.fixture(params=MODES, ids=["-".join(m) for m in MODES])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MemoryStore, Tenancy]]:
    kind, tenancy = request.param
    qdrant: QdrantEndpoint | None = request.getfixturevalue("qdrant") if kind == "qdrant" else None
    store = open_store(kind, tmp_path / "edge", qdrant)
    yield store, tenancy
    await store.close()


def pair(
    engine: tuple[MemoryStore, Tenancy], embedder: SessionEmbedder, a: TwinRef, b: TwinRef
) -> Pair:
    store, tenancy = engine
    return Pair(
        Archive(a, store, embedder, tenancy=tenancy),
        Archive(b, store, embedder, tenancy=tenancy),
        store,
    )


@pytest.mark.parametrize("case", range(4))
async def test_a_tenant_never_sees_or_touches_another(
    engine: tuple[MemoryStore, Tenancy], embedder: SessionEmbedder, case: int
) -> None:
    twin_a, ns_a, twin_b, ns_b = crafted_tenants()[case]
    tenants = pair(engine, embedder, twin_a, twin_b)
    b_memory = await tenants.b.commit(NewMemory(ns_b, SECRET, "agent-1"))
    # A commits the same text, with metadata that looks like B's tenant fields.
    a_memory = await tenants.a.commit(
        NewMemory(
            ns_a,
            SECRET,
            "agent-1",
            metadata={TENANT_FIELD: tenant_key(twin_b, ns_b), TWIN_FIELD: twin_b.key},
        )
    )

    # Query: only A's memory, and the count is A's alone.
    for where in (MemoryFilter(), MemoryFilter(twin_id="agent-1")):
        found = await tenants.a.query(MemoryQuery(ns_a, SECRET, top_k=100, filter=where))
        assert [hit.memory.id for hit in found.hits] == [a_memory.id]
        assert found.total_count == 1
    # A filter naming B's tenant key as a twin_id matches nothing (it is another field).
    crafted = MemoryFilter(twin_id=tenant_key(twin_b, ns_b))
    assert (await tenants.a.query(MemoryQuery(ns_a, SECRET, filter=crafted))).hits == []
    # List: only A's.
    page = await tenants.a.list(ListRequest(ns_a, page_size=100))
    assert ([m.id for m in page.memories], page.total_count) == ([a_memory.id], 1)
    # Delete: B's id is not A's to delete; B keeps it.
    with pytest.raises(NotFound):
        await tenants.a.delete(ns_a, b_memory.id)
    # A's namespace as seen by B is B's own: B still sees exactly its memory.
    found = await tenants.b.query(MemoryQuery(ns_b, SECRET, top_k=100))
    assert [hit.memory.id for hit in found.hits] == [b_memory.id]
    # A deletes its own; B's is untouched.
    await tenants.a.delete(ns_a, a_memory.id)
    assert (await tenants.a.list(ListRequest(ns_a))).total_count == 0
    assert (await tenants.b.list(ListRequest(ns_b))).total_count == 1


async def test_payload_mode_writes_the_tenant_keys_and_indexes_them_on_the_server(
    qdrant: QdrantEndpoint, embedder: SessionEmbedder, tmp_path: Path
) -> None:
    """The real server reports the tenant index (is_tenant) that local mode would ignore."""
    store = open_store("qdrant", tmp_path, qdrant)
    twin = unique_twin()
    archive = Archive(twin, store, embedder, tenancy="payload")
    try:
        memory = await archive.commit(NewMemory("threat.intel", "phishing wave", "agent-1"))
        scope = archive.scope("threat.intel")
        assert scope.collection == "phx_shared_384"
        client = store.client  # type: ignore[attr-defined]
        (point,) = await client.retrieve(scope.collection, [memory.id], with_payload=True)
        assert point.payload[TENANT_FIELD] == f"{twin.key}/threat.intel"
        assert point.payload[TWIN_FIELD] == twin.key
        info = await client.get_collection(scope.collection)
        tenant_index = info.payload_schema[TENANT_FIELD]
        assert tenant_index.params is not None
        assert tenant_index.params.is_tenant is True
        assert TWIN_FIELD in info.payload_schema
    finally:
        await store.close()
