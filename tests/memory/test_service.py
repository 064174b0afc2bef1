"""The memory service end to end: a real grpc.aio server, real embeddings, both engines."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from phoenix_common.errors import InvalidInput
from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_memory.archive import Archive
from phoenix_memory.server import MemoryServer, start
from phoenix_memory.store.edge import EdgeStore

from .conftest import TWIN, Backend, SessionEmbedder, StartServer, memory_stub, open_store
from .qdrant_server import QdrantEndpoint

Stub = memory_pb2_grpc.MemoryServiceStub


async def commit(stub: Stub, content: str, **fields: object) -> str:
    values: dict[str, object] = {"namespace": "ops", "twin_id": "twin-1"}
    values.update(fields)
    reply = await stub.CommitMemory(
        memory_pb2.CommitMemoryRequest(content=content, **values)  # type: ignore[arg-type]
    )
    assert reply.success
    assert not reply.error_message
    return str(uuid.UUID(reply.memory_id))


async def query(stub: Stub, text: str, **fields: object) -> memory_pb2.QueryMemoryResponse:
    values: dict[str, object] = {"namespace": "ops"}
    values.update(fields)
    reply: memory_pb2.QueryMemoryResponse = await stub.QueryMemory(
        memory_pb2.QueryMemoryRequest(query=text, **values)  # type: ignore[arg-type]
    )
    return reply


async def test_commit_then_query_returns_the_memory_with_every_field(stub: Stub) -> None:
    memory_id = await commit(
        stub,
        "hello qdrant",
        namespace="qdrant_test",
        memory_type="Semantic",
        risk_level="High",
        metadata={"source": "qdrant_test.md"},
    )
    reply = await query(stub, "hello", namespace="qdrant_test", twin_id="twin-1", top_k=5)
    assert reply.namespace == "qdrant_test"
    assert reply.total_count == 1
    (result,) = reply.results
    assert result.id == memory_id
    assert result.content == "hello qdrant"
    assert result.agent_id == "twin-1"
    assert (result.memory_type, result.risk_level) == ("Semantic", "High")
    assert dict(result.metadata) == {"source": "qdrant_test.md"}
    assert result.timestamp.endswith("Z")
    assert result.timestamp[:2] == "20"
    assert 0.3 < result.similarity <= 1.0  # Qdrant's cosine score, not 1 - score


async def test_a_paraphrase_ranks_above_unrelated_memories(stub: Stub) -> None:
    """Guards against defect 24: random vectors made ranking meaningless."""
    await commit(stub, "The quarterly budget review meeting moved to Thursday afternoon.")
    target = await commit(stub, "The cat fell asleep on the warm windowsill in the sun.")
    await commit(stub, "Kubernetes rolled out the new deployment to three replicas.")
    reply = await query(stub, "A kitten is napping by the sunny window.", top_k=3)
    assert next(r.id for r in reply.results) == target
    scores = [r.similarity for r in reply.results]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] - scores[1] > 0.2


async def test_query_filters_by_twin_and_memory_types(stub: Stub) -> None:
    a_episodic = await commit(stub, "alpha reactor log", twin_id="twin-a")
    a_semantic = await commit(stub, "alpha reactor fact", twin_id="twin-a", memory_type="Semantic")
    await commit(stub, "alpha reactor log", twin_id="twin-b")
    everyone = await query(stub, "alpha reactor", top_k=10)
    assert everyone.total_count == 3
    twin_a = await query(stub, "alpha reactor", twin_id="twin-a")
    assert {r.id for r in twin_a.results} == {a_episodic, a_semantic}
    assert twin_a.total_count == 2
    semantic = await query(stub, "alpha reactor", twin_id="twin-a", memory_types=["Semantic"])
    assert [r.id for r in semantic.results] == [a_semantic]
    assert semantic.total_count == 1
    both = await query(stub, "alpha reactor", memory_types=["Semantic", "Episodic"], top_k=1)
    assert len(both.results) == 1
    assert both.total_count == 3


async def test_total_count_counts_matches_beyond_the_page(stub: Stub) -> None:
    """Guards against defect 29: total_count was the page length."""
    for i in range(5):
        await commit(stub, f"status report number {i}")
    reply = await query(stub, "status report", top_k=2)
    assert (len(reply.results), reply.total_count) == (2, 5)


async def test_namespaces_are_separate(stub: Stub, server: MemoryServer) -> None:
    await commit(stub, "only in red", namespace="red")
    assert (await query(stub, "only in red", namespace="blue")).total_count == 0
    assert (await query(stub, "only in red", namespace="red")).total_count == 1
    twin = server.archive.twin
    expected = (
        f"phx.{twin.namespace}.{twin.name}.red"
        if server.archive.tenancy == "collection"
        else "phx_shared_384"
    )
    assert server.archive.scope("red").collection == expected
    assert await server.archive.store.exists(server.archive.scope("red"))


async def test_empty_namespace_means_default(stub: Stub) -> None:
    await commit(stub, "goes to default", namespace="")
    reply = await query(stub, "goes to default", namespace="default")
    assert reply.total_count == 1
    assert reply.namespace == "default"


async def test_list_pages_newest_first_and_filters_by_twin(stub: Stub) -> None:
    ids = [
        await commit(stub, f"entry {i}", twin_id="twin-1" if i % 2 else "twin-2") for i in range(5)
    ]
    first = await stub.ListMemories(memory_pb2.ListMemoriesRequest(namespace="ops", page_size=2))
    assert (first.total_count, first.total_pages, first.page, first.page_size) == (5, 3, 1, 2)
    assert first.namespace == "ops"
    assert [m.id for m in first.memories] == [ids[4], ids[3]]
    last = await stub.ListMemories(
        memory_pb2.ListMemoriesRequest(namespace="ops", page=3, page_size=2)
    )
    assert [m.id for m in last.memories] == [ids[0]]
    twin = await stub.ListMemories(
        memory_pb2.ListMemoriesRequest(namespace="ops", twin_id="twin-1")
    )
    assert [m.id for m in twin.memories] == [ids[3], ids[1]]
    assert twin.total_count == 2
    empty = await stub.ListMemories(memory_pb2.ListMemoriesRequest(namespace="nothing_here"))
    assert (empty.total_count, empty.total_pages, list(empty.memories)) == (0, 0, [])


async def test_delete_removes_a_memory_and_unknown_ids_are_not_found(stub: Stub) -> None:
    keep = await commit(stub, "keep me")
    drop = await commit(stub, "drop me")
    reply = await stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=drop, namespace="ops"))
    assert reply.success
    assert [r.id for r in (await query(stub, "drop me")).results] == [keep]
    for memory_id, namespace in ((drop, "ops"), (str(uuid.uuid4()), "ops"), (keep, "other")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.DeleteMemory(
                memory_pb2.DeleteMemoryRequest(memory_id=memory_id, namespace=namespace)
            )
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
        assert memory_id in (err.value.details() or "")


@pytest.mark.parametrize(
    ("rpc", "request_", "message"),
    [
        ("CommitMemory", memory_pb2.CommitMemoryRequest(content=""), "content must not be empty"),
        ("CommitMemory", memory_pb2.CommitMemoryRequest(content="x" * 40_000), "32768 bytes"),
        ("CommitMemory", memory_pb2.CommitMemoryRequest(content="x", namespace="a/b"), "namespace"),
        ("QueryMemory", memory_pb2.QueryMemoryRequest(query="x", top_k=500), "top_k"),
        ("QueryMemory", memory_pb2.QueryMemoryRequest(query="x", top_k=-3), "top_k"),
        ("ListMemories", memory_pb2.ListMemoriesRequest(page_size=1000), "page_size"),
        ("DeleteMemory", memory_pb2.DeleteMemoryRequest(memory_id="42"), "not a UUID"),
    ],
)
async def test_bad_input_is_invalid_argument_with_a_clear_message(
    stub: Stub, rpc: str, request_: object, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, rpc)(request_)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


def embedding_calls() -> float:
    return REGISTRY.get_sample_value("phoenix_memory_embedding_batch_texts_count") or 0.0


async def test_concurrent_commits_are_all_stored_and_embedded_in_batches(stub: Stub) -> None:
    calls_before = embedding_calls()
    ids = await asyncio.gather(*(commit(stub, f"parallel memory {i}") for i in range(24)))
    assert len(set(ids)) == 24
    assert embedding_calls() - calls_before < 24  # concurrent commits shared model calls
    assert (await query(stub, "parallel memory")).total_count == 24
    assert REGISTRY.get_sample_value(
        "phoenix_memory_operation_seconds_count", {"operation": "commit"}
    )


async def test_health_check_and_grpc_health_report_serving(
    stub: Stub, channel: grpc.aio.Channel
) -> None:
    reply = await stub.HealthCheck(memory_pb2.HealthCheckRequest())
    assert (reply.status, reply.message) == ("healthy", "Memory service is operational")
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "memory.MemoryService"):
        check = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert check.status == health_pb2.HealthCheckResponse.SERVING


async def test_memories_survive_a_restart_on_the_same_storage(  # noqa: PLR0917  (fixtures)
    backend: Backend,
    storage: Path,
    server_qdrant: QdrantEndpoint | None,
    server: MemoryServer,
    stub: Stub,
    start_server: StartServer,
) -> None:
    memory_id = await commit(stub, "the launch code is in the blue binder")
    await server.stop(0)  # closes the engine too
    restarted = await start_server(
        open_store(backend[0], storage, server_qdrant), tenancy=backend[1]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{restarted.port}") as channel:
        reply = await query(memory_stub(channel), "where is the launch code")
        assert [r.id for r in reply.results] == [memory_id]
        await commit(memory_stub(channel), "a second memory after restart")
        assert (await query(memory_stub(channel), "memory")).total_count == 2


async def test_backend_failure_is_unavailable_never_a_crash(
    stub: Stub, server: MemoryServer
) -> None:
    await commit(stub, "before the outage")
    await server.archive.store.close()
    for call in (
        stub.CommitMemory(memory_pb2.CommitMemoryRequest(content="during", namespace="ops")),
        stub.QueryMemory(memory_pb2.QueryMemoryRequest(query="before", namespace="ops")),
        stub.ListMemories(memory_pb2.ListMemoriesRequest(namespace="ops")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "retry later" in (err.value.details() or "") or "closed" in (
            err.value.details() or ""
        )
    reply = await stub.HealthCheck(memory_pb2.HealthCheckRequest())
    assert (reply.status, reply.message) == ("unhealthy", "Qdrant connection failed")


async def test_a_port_in_use_is_a_clear_configuration_error(
    server: MemoryServer, embedder: SessionEmbedder, tmp_path: Path
) -> None:
    archive = Archive(TWIN, EdgeStore(tmp_path / "other"), embedder)
    with pytest.raises(InvalidInput, match=f"cannot listen on 127.0.0.1:{server.port}"):
        await start(archive, port=server.port, heartbeat_interval_s=None)


async def test_with_a_tracer_provider_each_call_is_a_span_of_the_callers_trace(
    embedder: SessionEmbedder, tmp_path: Path
) -> None:
    """Tracing configured (an exporter): one server span per call, a child of the caller's.
    Without a provider (the other tests' servers, and the default) no tracing interceptor
    runs."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    archive = Archive(TWIN, EdgeStore(tmp_path / "edge"), embedder)
    server = await start(archive, heartbeat_interval_s=None, tracer_provider=provider)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = await memory_stub(channel).QueryMemory(
                memory_pb2.QueryMemoryRequest(query="anything", namespace="ops"),
                metadata=metadata,
                timeout=30,
            )
    finally:
        await server.stop(0)
    assert reply.total_count == 0
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("memory.MemoryService/QueryMemory", SpanKind.SERVER)
    assert span.context is not None
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == trace_id
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
