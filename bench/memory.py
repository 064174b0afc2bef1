"""Memory service benchmarks, each figure beside its baseline from the same run.

1. Embedder: all-MiniLM-L6-v2 on ONNX Runtime (the service's) against the PyTorch
   path it replaced (sentence-transformers, the reference): single-query latency
   p50 and batch throughput (64 per call), alternating so both see the same load.
2. The phoenix-memory process: RSS with the model loaded and 10,000 memories,
   after queries and commits over gRPC, run as the image runs it (its env): on a
   Qdrant server (the cluster's configuration; the real binary, QDRANT_BIN), and
   on Qdrant Edge, where the engine and the data are in the process too.
3. QueryMemory p50/p95 and CPU per query on a real phoenix-memory against embed +
   a direct query of the same Qdrant server through the same client, in interleaved
   blocks, with where the time goes (bench/memory_query.py).
4. Tenancy (bench/memory_tenancy.py): QueryMemory without embedding at N tenants
   x M memories, payload against collection mode, on the embedded engine.
5. Installed size of the ``memory`` extra against the same with sentence-transformers.

Sizes: ``BENCH_MEMORY_TENANTS`` and ``BENCH_MEMORY_PER_TENANT`` (default 1,000 each,
the issue's goal size; use e.g. 20 and 100 while developing).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import memory_query, memory_tenancy
from bench.memory_sizes import installed_mib
from bench.report import Figure, percentile
from phoenix_common.naming import TwinRef
from phoenix_common.stubs import memory_pb2
from phoenix_memory.archive import Archive
from phoenix_memory.embed.batching import BatchingEmbedder
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.model import Memory
from phoenix_memory.store.base import MemoryStore
from phoenix_memory.store.edge import EdgeStore
from phoenix_memory.store.qdrant_server import QdrantServerStore
from tests.memory.qdrant_server import qdrant_endpoint
from tests.memory.torch_reference import TorchEmbedder

AREA = "memory"
MEMORIES = 10_000
DISTINCT_TEXTS = 2_500
AGENTS = 4
SETUP_BATCH = 500
QUERIES = 200
LATENCY_SAMPLES = 100
THROUGHPUT_DOCS = 1024
NAMESPACE = "bench"
TWIN = TwinRef("bench", "twin")
RSS_GOAL_MIB = 250.0

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


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _embedders(onnx: LocalEmbedder) -> list[Figure]:
    torch = TorchEmbedder(batch_size=64)
    docs = [memory_text(i) for i in range(THROUGHPUT_DOCS)]
    await onnx.embed(docs[:64])
    torch.encode(docs[:64])  # warm-up
    onnx_ms: list[float] = []
    torch_ms: list[float] = []
    for i in range(LATENCY_SAMPLES):
        text = QUESTIONS[i % len(QUESTIONS)]
        started = time.perf_counter()
        await onnx.embed([text])
        onnx_ms.append(_ms(started))
        started = time.perf_counter()
        torch.encode([text])
        torch_ms.append(_ms(started))
    onnx_s = torch_s = 0.0
    for first in range(0, THROUGHPUT_DOCS, 256):  # interleaved blocks of 256
        block = docs[first : first + 256]
        started = time.perf_counter()
        for i in range(0, len(block), 64):
            await onnx.embed(block[i : i + 64])
        onnx_s += time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(block), 64):
            torch.encode(block[i : i + 64])
        torch_s += time.perf_counter() - started
    return [
        Figure(
            AREA,
            "embed 1 query p50, ONNX Runtime",
            percentile(onnx_ms, 50),
            "ms",
            baseline=percentile(torch_ms, 50),
            baseline_name="PyTorch",
            goal="<= 1x",
        ),
        Figure(
            AREA,
            "embed throughput (64/call), ONNX Runtime",
            THROUGHPUT_DOCS / onnx_s,
            "docs/s",
            baseline=THROUGHPUT_DOCS / torch_s,
            baseline_name="PyTorch",
            goal=">= 1x",
        ),
    ]


async def _fill(archive: Archive, *others: MemoryStore) -> None:
    """MEMORIES memories: DISTINCT_TEXTS real embeddings, each stored for AGENTS twin ids,
    in the archive's store and the same points in ``others``."""
    scope = archive.scope(NAMESPACE)
    stores = (archive.store, *others)
    for store in stores:
        await store.ensure(scope, archive.embedder.dim)
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
        for store in stores:
            await store.upsert(scope, points)


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


async def _service_rss(backend: dict[str, str]) -> float:
    """RSS (MiB) of a real phoenix-memory on the 10,000 memories, after queries and commits."""
    async with memory_query.phoenix_memory(TWIN, backend) as service:
        for i in range(50):
            reply = await service.stub.QueryMemory(
                memory_pb2.QueryMemoryRequest(
                    query=QUESTIONS[i % len(QUESTIONS)], namespace=NAMESPACE
                ),
                wait_for_ready=True,
            )
            assert reply.total_count >= MEMORIES
        commits = [
            service.stub.CommitMemory(
                memory_pb2.CommitMemoryRequest(content=memory_text(i) * 4, namespace="new")
            )
            for i in range(64)
        ]
        await asyncio.gather(*commits)  # concurrent: batched long texts, the peak case
        return _rss_mib(service.pid)


async def _run() -> list[Figure]:
    model = await LocalEmbedder.load(batch_size=64)
    figures = await _embedders(model)
    embedder = BatchingEmbedder(model, max_batch=64)
    with (
        tempfile.TemporaryDirectory(prefix="phoenix-memory-bench-") as tmp,
        qdrant_endpoint() as qdrant,
    ):
        archive = Archive(TWIN, EdgeStore(Path(tmp) / "data"), embedder)
        server_store = QdrantServerStore.connect(qdrant.grpc_url, api_key=None, timeout_s=30)
        await _fill(archive, server_store)
        await server_store.close()
        figures += await memory_query.compare(
            archive, qdrant.grpc_url, qdrant.pid, NAMESPACE, QUESTIONS
        )
        await archive.close()
        in_cluster = await _service_rss({"MEMORY_BACKEND": "qdrant", "QDRANT_URL": qdrant.grpc_url})
        embedded = await _service_rss(
            {"MEMORY_BACKEND": "edge", "MEMORY_DATA_DIR": str(Path(tmp) / "data")}
        )
        figures += [
            Figure(
                AREA,
                f"phoenix-memory RSS, model + {MEMORIES} memories in Qdrant",
                in_cluster,
                "MiB",
                baseline=RSS_GOAL_MIB,
                baseline_name="goal",
                goal="<= 1x",
            ),
            Figure(
                AREA,
                "  same, Qdrant Edge in-process (engine + data in RSS)",
                embedded,
                "MiB",
                baseline=RSS_GOAL_MIB,
                baseline_name="goal",
                goal="informational",
            ),
        ]
        figures += await memory_tenancy.run(Path(tmp) / "tenancy")
    figures += installed_mib(AREA)
    return figures


def run() -> list[Figure]:
    return asyncio.run(_run())
