"""QueryMemory against embed + a direct Qdrant query, like with like, and the floor between.

One Qdrant server (the real binary) holds the 10,000 memories. Three paths query
it in interleaved blocks, so load from other jobs on the machine hits all alike:

- **QueryMemory**: a real ``phoenix-memory`` process (the image's environment, the
  server backend, the cluster's configuration) called over gRPC by this process.
- **hop floor** (``bench/memory_hop_floor.py``): the same work (embed, then the
  query phoenix-memory sends) behind a bare grpc.aio server in a process of its
  own, answering a canned reply of the same size: what any Python gRPC service
  in front of the work costs, with nothing of phoenix-memory's in it.
- **direct**: this process embeds with the same model on the same runtime (the
  service's embedder classes, on a worker thread) and queries the same collection
  through the same client (``phoenix_common.qdrant.connect``: qdrant-client over
  gRPC), with the filter the service sends.

Each reports wall-clock p50/p95 and CPU per query, summed over every process the
path keeps busy (this one, its server, Qdrant), read from /proc: on a loaded
machine CPU time is the steadier measure of the work a query costs. Where the
time goes: ``floor / direct`` is the gRPC hop's share, ``QueryMemory / floor``
phoenix-memory's own (the exact count, validation, conversions, interceptors).
Embedding and the Qdrant query are timed on the direct path; the service's own
time inside the archive (embedding, search and exact count) comes from its
``phoenix_memory_operation_seconds`` histogram.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from bench.memory_tenancy import free_port
from bench.report import Figure, percentile
from phoenix_common import qdrant
from phoenix_common.naming import TwinRef
from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_memory.archive import Archive
from phoenix_memory.model import MemoryFilter
from phoenix_memory.store.qdrant_server import to_filter

AREA = "memory"
BLOCK = 20
BLOCKS = 10  # per path: BLOCK x BLOCKS queries each
WARMUP = 10
TOP_K = 10
GOAL = "<= 1.2x"
# What the memory image sets (images/memory/Dockerfile): freed activations go back.
IMAGE_ENV = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576", "HF_HUB_OFFLINE": "1"}


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far; 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Service:
    """A running phoenix-memory: its pid, a stub on its gRPC port, its metrics URL."""

    pid: int
    stub: Any
    metrics_url: str

    def query_seconds(self) -> tuple[float, float]:
        """(sum, count) of its QueryMemory time inside the archive, from /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:  # noqa: S310 - a local http URL we built
            text = response.read().decode()
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "phoenix_memory_operation_seconds":
                continue
            for sample in family.samples:
                if sample.labels.get("operation") == "query":
                    found[sample.name.rsplit("_", 1)[1]] = sample.value
        return found.get("sum", 0.0), found.get("count", 0.0)


@asynccontextmanager
async def phoenix_memory(twin: TwinRef, backend: Mapping[str, str]) -> AsyncIterator[Service]:
    """``phoenix-memory`` as the image runs it (its env), serving ``twin`` on ``backend``."""
    port, metrics_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MEMORY_", "QDRANT_", "EMBEDDING_", "TWIN_", "OTEL_"))
    }
    env |= IMAGE_ENV | dict(backend)
    env |= {
        "MEMORY_GRPC_HOST": "127.0.0.1",
        "MEMORY_GRPC_PORT": str(port),
        "MEMORY_METRICS_PORT": str(metrics_port),
        "TWIN_NAMESPACE": twin.namespace,
        "TWIN_NAME": twin.name,
        "PHOENIX_LOG_FORMAT": "text",
    }
    binary = Path(sys.executable).with_name("phoenix-memory")
    process = await asyncio.create_subprocess_exec(
        str(binary), env=env, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 300)
            stub: Any = memory_pb2_grpc.MemoryServiceStub(channel)  # type: ignore[no-untyped-call]
            yield Service(process.pid, stub, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@dataclass
class Samples:
    """Samples of one path: wall-clock ms per query and CPU seconds per process."""

    wall_ms: list[float]
    cpu_s: dict[str, float]
    queries: int = 0

    def cpu_ms_per_query(self, process: str | None = None) -> float:
        total = self.cpu_s[process] if process else sum(self.cpu_s.values())
        return total * 1000 / self.queries


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


@asynccontextmanager
async def hop_floor(
    qdrant_url: str, collection: str, query_filter: Any, reply: bytes
) -> AsyncIterator[tuple[int, Any]]:
    """``bench.memory_hop_floor`` serving the same work; yields its pid and a stub."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="phoenix-memory-reply-") as reply_file:
        reply_file.write(reply)
        reply_file.flush()
        where = "null" if query_filter is None else query_filter.model_dump_json()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.memory_hop_floor",
            str(port),
            qdrant_url,
            collection,
            where,
            reply_file.name,
            env={**os.environ, **IMAGE_ENV},
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await asyncio.wait_for(channel.channel_ready(), 300)
                yield process.pid, memory_pb2_grpc.MemoryServiceStub(channel)  # type: ignore[no-untyped-call]
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


# Every path runs first and last equally often: load from other jobs hits all alike.
ORDER = ("QueryMemory", "floor", "direct", "direct", "floor", "QueryMemory")
PATHS = ("QueryMemory", "floor", "direct")
PROCESSES = ("bench", "server", "qdrant")


async def _blocks(
    runs: Mapping[str, Callable[[str], Awaitable[object]]],
    paths: Mapping[str, Samples],
    servers: Mapping[str, int | None],
    qdrant_pid: int | None,
    questions: tuple[str, ...],
) -> None:
    """``BLOCKS`` blocks of ``BLOCK`` queries per path, in ``ORDER``, timed and CPU-counted."""
    for block in range(len(PATHS) * BLOCKS):
        name = ORDER[block % len(ORDER)]
        path = paths[name]
        pids = {"bench": None, "server": servers[name], "qdrant": qdrant_pid}
        before = {process: cpu_seconds(pid) for process, pid in pids.items()}
        before["bench"] = time.process_time()
        for i in range(BLOCK):
            started = time.perf_counter()
            await runs[name](questions[(block * BLOCK + i) % len(questions)])
            path.wall_ms.append(_ms(started))
        after = {process: cpu_seconds(pid) for process, pid in pids.items()}
        after["bench"] = time.process_time()
        for process in PROCESSES:
            path.cpu_s[process] += after[process] - before[process]
        path.queries += BLOCK


async def compare(
    archive: Archive,
    qdrant_url: str,
    qdrant_pid: int | None,
    namespace: str,
    questions: tuple[str, ...],
) -> list[Figure]:
    """QueryMemory on a phoenix-memory serving ``archive``'s twin, the hop floor, embed + direct."""
    scope = archive.scope(namespace)
    query_filter = to_filter(scope, MemoryFilter())
    client = qdrant.connect(qdrant_url, api_key=None, timeout_s=30)
    backend = {"MEMORY_BACKEND": "qdrant", "QDRANT_URL": qdrant_url}
    paths = {name: Samples([], dict.fromkeys(PROCESSES, 0.0)) for name in PATHS}
    embed_ms: list[float] = []
    search_ms: list[float] = []
    count_ms: list[float] = []
    request = partial(memory_pb2.QueryMemoryRequest, namespace=namespace, top_k=TOP_K)

    async def query_memory(stub: Any, text: str) -> memory_pb2.QueryMemoryResponse:
        reply: memory_pb2.QueryMemoryResponse = await stub.QueryMemory(request(query=text))
        assert len(reply.results) == TOP_K
        return reply

    async def direct(text: str, timed: bool) -> None:
        started = time.perf_counter()
        (vector,) = await archive.embedder.embed([text])
        embedded = time.perf_counter()
        response = await client.query_points(
            scope.collection,
            query=vector,
            query_filter=query_filter,
            limit=TOP_K,
            with_payload=True,
        )
        assert len(response.points) == TOP_K
        if timed:
            embed_ms.append((embedded - started) * 1000)
            search_ms.append(_ms(embedded))

    async with phoenix_memory(archive.twin, backend) as service:
        canned = (await query_memory(service.stub, questions[0])).SerializeToString()
        async with hop_floor(qdrant_url, scope.collection, query_filter, canned) as floor:
            floor_pid, floor_stub = floor
            runs: dict[str, Callable[[str], Awaitable[object]]] = {
                "QueryMemory": partial(query_memory, service.stub),
                "floor": partial(query_memory, floor_stub),
                "direct": partial(direct, timed=True),
            }
            for i in range(WARMUP):
                await query_memory(service.stub, questions[i % len(questions)])
                await query_memory(floor_stub, questions[i % len(questions)])
                await direct(questions[i % len(questions)], timed=False)
            archive_s0, archive_n0 = service.query_seconds()
            servers = {"QueryMemory": service.pid, "floor": floor_pid, "direct": None}
            await _blocks(runs, paths, servers, qdrant_pid, questions)
            archive_s1, archive_n1 = service.query_seconds()
        for _ in range(BLOCK * 2):  # the exact count QueryMemory runs beside the embedding
            started = time.perf_counter()
            await client.count(scope.collection, count_filter=query_filter, exact=True)
            count_ms.append(_ms(started))
    await client.close()
    archive_ms = (archive_s1 - archive_s0) * 1000 / max(1.0, archive_n1 - archive_n0)
    return _figures(paths, embed_ms, search_ms, count_ms, archive_ms)


def _figures(
    paths: dict[str, Samples],
    embed_ms: list[float],
    search_ms: list[float],
    count_ms: list[float],
    in_archive_ms: float,
) -> list[Figure]:
    served, floor, baseline = paths["QueryMemory"], paths["floor"], paths["direct"]
    mean_total = sum(served.wall_ms) / len(served.wall_ms)

    def wall(samples: Samples, q: int) -> float:
        return percentile(samples.wall_ms, q)

    def versus(
        name: str, value: float, base: float, base_name: str, goal: str = "informational"
    ) -> Figure:
        return Figure(AREA, name, value, "ms", baseline=base, baseline_name=base_name, goal=goal)

    direct, hop = "embed+direct query", "hop floor"
    figures = [
        versus("QueryMemory p50, 10000 memories, Qdrant", wall(served, 50), wall(baseline, 50),
               direct, GOAL),
        versus("QueryMemory p95", wall(served, 95), wall(baseline, 95), direct),
        versus("  hop floor p50 (same work behind a bare gRPC server)", wall(floor, 50),
               wall(baseline, 50), direct),
        versus("  QueryMemory p50 against the hop floor", wall(served, 50), wall(floor, 50), hop),
        versus("QueryMemory CPU/query, all processes", served.cpu_ms_per_query(),
               baseline.cpu_ms_per_query(), direct),
        versus("  hop floor CPU/query, all processes", floor.cpu_ms_per_query(),
               baseline.cpu_ms_per_query(), direct, goal=""),
        *(
            versus(f"  CPU/query in {process} (server: phoenix-memory, the floor's)",
                   served.cpu_ms_per_query(process), floor.cpu_ms_per_query(process), hop,
                   goal="")
            for process in PROCESSES
        ),
    ]  # fmt: skip
    figures += [
        Figure(AREA, "  direct: embed p50", percentile(embed_ms, 50), "ms"),
        Figure(AREA, "  direct: Qdrant query p50", percentile(search_ms, 50), "ms"),
        Figure(
            AREA, "  exact count p50 (service: beside the embed)", percentile(count_ms, 50), "ms"
        ),
        Figure(AREA, "  QueryMemory mean, client-side", mean_total, "ms"),
        Figure(AREA, "  of which in the archive (service metric)", in_archive_ms, "ms"),
        Figure(
            AREA,
            "  of which gRPC hop, validation, response",
            mean_total - in_archive_ms,
            "ms",
        ),
    ]
    return figures
