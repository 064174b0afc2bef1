"""Memory service: QueryMemory p50 over gRPC vs a direct query, and commits per second.

Set-up: 10,000 memories written in batches straight to the storage layer (the
edge backend on a temporary directory): 2,500 distinct texts, each embedded
once by the real model and stored for 4 agents (twin ids), so set-up costs
2,500 embeddings instead of 10,000. Then, alternating so both see the same
machine load:

- QueryMemory through a real grpc.aio server and channel (embed, search, count);
- the same embedder plus a direct search on the same EdgeStore (the baseline).

Commits per second are measured with 16 concurrent clients through gRPC, next to
the same clients calling the Archive directly (no gRPC).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from bench.report import Figure, percentile
from phoenix_common.naming import TwinRef
from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_memory.archive import Archive
from phoenix_memory.embed.batching import BatchingEmbedder
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.model import Memory, MemoryFilter, NewMemory
from phoenix_memory.server import start
from phoenix_memory.store.edge import EdgeStore

AREA = "memory"
MEMORIES = 10_000
DISTINCT_TEXTS = 2_500
AGENTS = 4
SETUP_BATCH = 500
QUERIES = 200
COMMITS = 256
COMMIT_CONCURRENCY = 16
NAMESPACE = "bench"

SUBJECTS = ("The on-call engineer", "A customer", "The build agent", "Security", "The planner")
EVENTS = (
    "reported a failed login from an unknown address",
    "noticed the disk on the database host filling up",
    "rolled out a new version of the payment service",
    "asked for a refund of a duplicate invoice",
    "flagged a slow query in the reporting dashboard",
    "rotated the API keys of the staging cluster",
    "approved the change request for the firewall rules",
)
QUESTIONS = (
    "who logged in from a strange IP?",
    "is the database running out of space?",
    "what was deployed to payments?",
    "which invoice was charged twice?",
    "why is the dashboard slow?",
)


def memory_text(i: int) -> str:
    subject = SUBJECTS[i % len(SUBJECTS)]
    event = EVENTS[(i // len(SUBJECTS)) % len(EVENTS)]
    return f"{subject} {event} on host {i % 211} during shift {i % 9} (ticket {i})."


async def _run() -> list[Figure]:
    twin = TwinRef("bench", "twin")
    model = await LocalEmbedder.load(batch_size=64)
    embedder = BatchingEmbedder(model, max_batch=64)
    with tempfile.TemporaryDirectory(prefix="phoenix-memory-bench-") as tmp:
        store = EdgeStore(Path(tmp))
        archive = Archive(twin, store, embedder)
        await _fill(archive)
        direct_rate = await _commits(archive.commit)

        server = await start(archive, heartbeat_interval_s=None)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub_class: Any = memory_pb2_grpc.MemoryServiceStub
                stub = stub_class(channel)
                grpc_ms, direct_ms = await _queries(stub, archive)

                async def commit_over_grpc(item: NewMemory) -> None:
                    reply = await stub.CommitMemory(
                        memory_pb2.CommitMemoryRequest(
                            content=item.content, namespace=item.namespace, twin_id=item.twin_id
                        )
                    )
                    assert reply.success

                commit_rate = await _commits(commit_over_grpc)
        finally:
            await server.stop(0)  # closes the archive, its store and embedder
    return [
        Figure(
            AREA,
            f"QueryMemory p50, {MEMORIES} memories, edge",
            percentile(grpc_ms, 50),
            "ms",
            baseline=percentile(direct_ms, 50),
            baseline_name="embed+direct search",
            goal="<= 1.2x",
        ),
        Figure(AREA, "QueryMemory p95 over gRPC", percentile(grpc_ms, 95), "ms"),
        Figure(
            AREA,
            f"CommitMemory/s over gRPC, {COMMIT_CONCURRENCY} clients",
            commit_rate,
            "ops/s",
            baseline=direct_rate,
            baseline_name="Archive.commit (no gRPC)",
            goal="informational",
        ),
    ]


async def _queries(stub: Any, archive: Archive) -> tuple[list[float], list[float]]:
    collection = archive.collection(NAMESPACE)
    everything = MemoryFilter()
    grpc_ms: list[float] = []
    direct_ms: list[float] = []
    for i in range(QUERIES + 10):  # the first 10 of each warm up
        text = QUESTIONS[i % len(QUESTIONS)]
        started = time.perf_counter()
        reply = await stub.QueryMemory(
            memory_pb2.QueryMemoryRequest(query=text, namespace=NAMESPACE, top_k=10)
        )
        grpc_elapsed = (time.perf_counter() - started) * 1000
        assert len(reply.results) == 10
        started = time.perf_counter()
        (vector,) = await archive.embedder.embed([text])
        hits = await archive.store.search(collection, vector, everything, 10)
        direct_elapsed = (time.perf_counter() - started) * 1000
        assert len(hits) == 10
        if i >= 10:
            grpc_ms.append(grpc_elapsed)
            direct_ms.append(direct_elapsed)
    return grpc_ms, direct_ms


async def _fill(archive: Archive) -> None:
    """MEMORIES memories: DISTINCT_TEXTS real embeddings, each stored for AGENTS twin ids."""
    collection = archive.collection(NAMESPACE)
    await archive.store.create_collection(collection, archive.embedder.dim)
    created = datetime.now(UTC)
    for first in range(0, DISTINCT_TEXTS, SETUP_BATCH):
        texts = [memory_text(i) for i in range(first, min(first + SETUP_BATCH, DISTINCT_TEXTS))]
        vectors = await archive.embedder.embed(texts)
        points = [
            (
                Memory(
                    id=str(uuid.uuid4()),
                    created_at=created + timedelta(milliseconds=first + i),
                    content=text,
                    twin_id=f"agent-{agent}",
                    memory_type="Episodic",
                    risk_level="Low",
                    metadata={"source": "bench"},
                ),
                vector,
            )
            for agent in range(AGENTS)
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ]
        await archive.store.upsert(collection, points)


async def _commits(commit: Callable[[NewMemory], Awaitable[object]]) -> float:
    """Commits per second of COMMITS new memories from COMMIT_CONCURRENCY clients."""
    queue = list(range(COMMITS))

    async def client() -> None:
        while queue:
            i = queue.pop()
            await commit(NewMemory(NAMESPACE, f"{memory_text(i)} Follow-up {i}.", "agent-9"))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(COMMIT_CONCURRENCY)))
    return COMMITS / (time.perf_counter() - started)


def run() -> list[Figure]:
    return asyncio.run(_run())
