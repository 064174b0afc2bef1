"""Tenants at scale: QueryMemory after the embedding, payload against collection tenancy.

The same data twice on the embedded engine (Qdrant Edge): BENCH_MEMORY_TENANTS twins
(default 1,000) with BENCH_MEMORY_PER_TENANT memories each (default 1,000), once in
one shared collection (payload mode: tenant key indexed ``is_tenant``) and once in a
collection per tenant. Vectors are random unit vectors: the embedding is excluded
(its latency is the "embed 1 query" figure), so only the search and the exact
count that QueryMemory runs are timed, through ``Archive.search``, as the service
runs them, on randomly chosen tenants.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.report import Figure, percentile
from phoenix_common.naming import Tenancy, TwinRef
from phoenix_memory.archive import Archive
from phoenix_memory.model import Memory, MemoryQuery
from phoenix_memory.store.edge import EdgeStore

AREA = "memory"
DIM = 384
QUERIES = 300
P95_GOAL_MS = 50.0
NAMESPACE = "default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RandomVectors:
    """A fixed embedder stand-in: only ``dim`` is read (the data is written directly)."""

    dim = DIM
    description = "random unit vectors"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise AssertionError("the tenancy benchmark excludes embedding")

    async def close(self) -> None:
        return None


def unit_vectors(rng: np.random.Generator, count: int) -> list[list[float]]:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result: list[list[float]] = vectors.tolist()
    return result


async def _fill(store: EdgeStore, tenancy: Tenancy, tenants: int, per_tenant: int) -> list[Archive]:
    rng = np.random.default_rng(14)
    archives = [
        Archive(TwinRef("bench", f"twin-{i}"), store, RandomVectors(), tenancy=tenancy)
        for i in range(tenants)
    ]
    created = datetime(2026, 1, 1, tzinfo=UTC)
    for index, archive in enumerate(archives):
        scope = archive.scope(NAMESPACE)
        if index == 0 or tenancy == "collection":
            await store.ensure(scope, DIM)
        points = [
            (
                Memory(
                    id=str(uuid.uuid4()),
                    created_at=created + timedelta(seconds=n),
                    content=f"memory {n} of tenant {index}",
                    twin_id="agent",
                    memory_type="Episodic",
                    risk_level="Low",
                    metadata={},
                ),
                vector,
            )
            for n, vector in enumerate(unit_vectors(rng, per_tenant))
        ]
        await store.upsert(scope, points)
    return archives


async def _p95(archives: list[Archive], per_tenant: int) -> tuple[float, float]:
    rng = random.Random(14)
    vectors = unit_vectors(np.random.default_rng(41), 32)
    samples: list[float] = []
    for i in range(QUERIES + 20):
        archive = rng.choice(archives)
        started = time.perf_counter()
        result = await archive.search(MemoryQuery(NAMESPACE, "q", top_k=10), vectors[i % 32])
        elapsed = (time.perf_counter() - started) * 1000
        assert result.total_count == per_tenant
        assert len(result.hits) == min(10, per_tenant)
        if i >= 20:
            samples.append(elapsed)
    return percentile(samples, 50), percentile(samples, 95)


async def run(workdir: Path) -> list[Figure]:
    tenants = int(os.environ.get("BENCH_MEMORY_TENANTS", "1000"))
    per_tenant = int(os.environ.get("BENCH_MEMORY_PER_TENANT", "1000"))
    results: dict[str, tuple[float, float, float]] = {}
    modes: tuple[Tenancy, ...] = ("payload", "collection")
    for tenancy in modes:
        store = EdgeStore(workdir / tenancy)
        started = time.perf_counter()
        archives = await _fill(store, tenancy, tenants, per_tenant)
        fill_s = time.perf_counter() - started
        p50, p95 = await _p95(archives, per_tenant)
        results[tenancy] = (p50, p95, fill_s)
        await store.close()
    size = f"{tenants}x{per_tenant}"
    payload, collection = results["payload"], results["collection"]
    return [
        Figure(
            AREA,
            f"QueryMemory p95 w/o embedding, {size}, payload",
            results["payload"][1],
            "ms",
            baseline=results["collection"][1],
            baseline_name="collection mode",
            goal="informational",
        ),
        Figure(
            AREA,
            f"QueryMemory p95 w/o embedding, {size}, payload",
            results["payload"][1],
            "ms",
            baseline=P95_GOAL_MS,
            baseline_name="goal",
            goal="<= 1x",
        ),
        Figure(AREA, f"QueryMemory p50 w/o embedding, {size}, payload", payload[0], "ms"),
        Figure(AREA, f"QueryMemory p50 w/o embedding, {size}, collection", collection[0], "ms"),
        Figure(AREA, f"fill {size}, payload", results["payload"][2], "s"),
        Figure(AREA, f"fill {size}, collection", results["collection"][2], "s"),
    ]
