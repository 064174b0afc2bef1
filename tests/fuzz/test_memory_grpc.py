"""memory.MemoryService under random and boundary input, on Qdrant Edge with the real model.

For every RPC: each field drawn from edge cases and arbitrary values; the answer
checked against the contract (protos/memory.proto and the limits of
phoenix_memory.model); a stored memory read back unchanged; and the service
still answering a plain commit and query afterwards.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from phoenix_common.naming import MEMORY_NAMESPACE
from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_memory import model
from tests.fuzz import strategies as fz
from tests.fuzz.conftest import Service
from tests.fuzz.edge import OK, call, judge, raw_call

pytestmark = pytest.mark.fuzz

NOT_FOUND = grpc.StatusCode.NOT_FOUND

odd_namespaces = st.one_of(
    st.sampled_from(["x" * 64, "x" * 65, "A", "0"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
    fz.odd_text(),
)
odd_twin_ids = st.one_of(st.sampled_from(["unknown-twin"]), fz.odd_text(model.MAX_TWIN_ID_CHARS))
odd_memory_types = st.one_of(st.sampled_from(["episodic", "EPISODIC"]), fz.odd_text())
odd_risk_levels = st.one_of(st.sampled_from(["low", "Severe"]), fz.odd_text())
odd_metadata = st.one_of(
    fz.odd_map(
        st.one_of(st.sampled_from(["", "k", "x" * 128, "x" * 129]), fz.odd_text()),
        fz.odd_text(model.MAX_METADATA_VALUE_BYTES),
        max_size=model.MAX_METADATA_ENTRIES + 2,
    ),
    st.builds(lambda n: {f"k{i}": "v" for i in range(n)}, st.sampled_from([32, 33, 200])),
)

# What a well-behaved client sends.
namespaces = st.one_of(
    st.sampled_from(["", "default", "fuzz", "threat_intel_v24"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,12}", fullmatch=True),
)
contents = fz.text(max_size=400).filter(lambda s: bool(s.strip()))
twin_ids = st.sampled_from(["", "twin-sentinel", "twin-aegis", "team-a/sentinel"])
memory_types = st.sampled_from(["", *model.MEMORY_TYPES])
risk_levels = st.sampled_from(["", *model.RISK_LEVELS])
metadata = st.dictionaries(fz.text(max_size=20).filter(bool), fz.text(max_size=80), max_size=5)

commits = fz.requests(
    memory_pb2.CommitMemoryRequest,
    valid={
        "content": contents,
        "namespace": namespaces,
        "twin_id": twin_ids,
        "memory_type": memory_types,
        "risk_level": risk_levels,
        "metadata": metadata,
    },
    odd={
        "content": fz.odd_text(model.MAX_CONTENT_BYTES),
        "namespace": odd_namespaces,
        "twin_id": odd_twin_ids,
        "memory_type": odd_memory_types,
        "risk_level": odd_risk_levels,
        "metadata": odd_metadata,
    },
)
queries = fz.requests(
    memory_pb2.QueryMemoryRequest,
    valid={
        "query": contents,
        "namespace": namespaces,
        "twin_id": twin_ids,
        "top_k": st.integers(0, model.MAX_TOP_K),
        "memory_types": st.lists(memory_types.filter(bool), max_size=4),
    },
    odd={
        "query": fz.odd_text(model.MAX_QUERY_BYTES),
        "namespace": odd_namespaces,
        "twin_id": odd_twin_ids,
        "top_k": fz.int32(),
        "memory_types": st.lists(st.one_of(odd_memory_types, memory_types), max_size=6),
    },
)
listings = fz.requests(
    memory_pb2.ListMemoriesRequest,
    valid={
        "namespace": namespaces,
        "page": st.integers(0, 50),
        "page_size": st.integers(0, model.MAX_PAGE_SIZE),
        "twin_id": twin_ids,
    },
    odd={
        "namespace": odd_namespaces,
        "page": fz.int32(),
        "page_size": fz.int32(),
        "twin_id": odd_twin_ids,
    },
)


@pytest.fixture(scope="module")
def stub(memory_service: Service) -> Iterator[Any]:
    yield memory_pb2_grpc.MemoryServiceStub(memory_service.channel)  # type: ignore[no-untyped-call]
    still_answers(memory_service, memory_pb2_grpc.MemoryServiceStub(memory_service.channel))  # type: ignore[no-untyped-call]


def still_answers(service: Service, stub: Any) -> None:
    """After the fuzzing: healthy, and a plain commit is found by a plain query."""
    health = call(service, "memory.HealthCheck", stub.HealthCheck, memory_pb2.HealthCheckRequest())
    assert health.reply.status == "healthy", health
    content = f"after the fuzzing {uuid.uuid4()}"
    commit = call(
        service,
        "memory.CommitMemory",
        stub.CommitMemory,
        memory_pb2.CommitMemoryRequest(content=content, namespace="after-fuzz"),
    )
    found = call(
        service,
        "memory.QueryMemory",
        stub.QueryMemory,
        memory_pb2.QueryMemoryRequest(query=content, namespace="after-fuzz", top_k=1),
    )
    assert [r.id for r in found.reply.results] == [commit.reply.memory_id]


# -- the contract, as the tests read it --------------------------------------------------


def namespace_ok(value: str) -> bool:
    return value == "" or MEMORY_NAMESPACE.match(value) is not None


def text_ok(value: str, limit: int) -> bool:
    return bool(value.strip()) and len(value.encode()) <= limit


def metadata_ok(values: dict[str, str]) -> bool:
    return len(values) <= model.MAX_METADATA_ENTRIES and all(
        0 < len(k) <= model.MAX_METADATA_KEY_CHARS
        and len(v.encode()) <= model.MAX_METADATA_VALUE_BYTES
        for k, v in values.items()
    )


def bad_fields(checks: dict[str, bool]) -> set[str]:
    return {name for name, ok in checks.items() if not ok}


# -- CommitMemory --------------------------------------------------------------------------


@given(request=commits)
def test_commit_memory_stores_exactly_what_it_accepts(
    memory_service: Service, stub: Any, request: memory_pb2.CommitMemoryRequest
) -> None:
    content, namespace, twin_id = request.content, request.namespace, request.twin_id
    memory_type, risk_level, meta = request.memory_type, request.risk_level, dict(request.metadata)
    answer = call(memory_service, "memory.CommitMemory", stub.CommitMemory, request)
    invalid = bad_fields(
        {
            "content": text_ok(content, model.MAX_CONTENT_BYTES),
            "namespace": namespace_ok(namespace),
            "twin_id": len(twin_id) <= model.MAX_TWIN_ID_CHARS,
            "memory_type": memory_type in ("", *model.MEMORY_TYPES),
            "risk_level": risk_level in ("", *model.RISK_LEVELS),
            "metadata": metadata_ok(meta),
        }
    )
    judge("memory.CommitMemory", answer, invalid)
    if answer.code != OK:
        return
    assert answer.reply.success
    stored = find(memory_service, stub, namespace, answer.reply.memory_id)
    assert stored.content == content
    assert dict(stored.metadata) == meta
    assert stored.agent_id == twin_id
    assert stored.memory_type == (memory_type or model.DEFAULT_MEMORY_TYPE)
    assert stored.risk_level == (risk_level or model.DEFAULT_RISK_LEVEL)


def find(service: Service, stub: Any, namespace: str, memory_id: str) -> Any:
    """The memory just committed: the newest of its namespace, so on the first page."""
    listing = call(
        service,
        "memory.ListMemories",
        stub.ListMemories,
        memory_pb2.ListMemoriesRequest(namespace=namespace, page_size=model.MAX_PAGE_SIZE),
    )
    matches = [m for m in listing.reply.memories if m.id == memory_id]
    assert len(matches) == 1, f"committed {memory_id} not listed in {namespace!r}"
    return matches[0]


# -- QueryMemory ---------------------------------------------------------------------------


@given(request=queries)
def test_query_memory_answers_within_its_filters(
    memory_service: Service, stub: Any, request: memory_pb2.QueryMemoryRequest
) -> None:
    query, namespace, twin_id = request.query, request.namespace, request.twin_id
    top_k, types = request.top_k, list(request.memory_types)
    answer = call(memory_service, "memory.QueryMemory", stub.QueryMemory, request)
    invalid = bad_fields(
        {
            "query": text_ok(query, model.MAX_QUERY_BYTES),
            "namespace": namespace_ok(namespace),
            "twin_id": len(twin_id) <= model.MAX_TWIN_ID_CHARS,
            "top_k": 0 <= top_k <= model.MAX_TOP_K,
            "memory_types": all(t in model.MEMORY_TYPES for t in types),
        }
    )
    judge("memory.QueryMemory", answer, invalid)
    if answer.code != OK:
        return
    reply = answer.reply
    assert reply.namespace == (namespace or "default")
    assert len(reply.results) <= (top_k or model.DEFAULT_TOP_K)
    for result in reply.results:
        assert not twin_id or result.agent_id == twin_id
        assert not types or result.memory_type in types
        assert -1.0 - 1e-6 <= result.similarity <= 1.0 + 1e-6


# -- ListMemories --------------------------------------------------------------------------


@given(request=listings)
def test_list_memories_pages_are_consistent(
    memory_service: Service, stub: Any, request: memory_pb2.ListMemoriesRequest
) -> None:
    namespace, page, page_size, twin_id = (
        request.namespace,
        request.page,
        request.page_size,
        request.twin_id,
    )
    answer = call(memory_service, "memory.ListMemories", stub.ListMemories, request)
    effective_page, effective_size = page or 1, page_size or model.DEFAULT_PAGE_SIZE
    invalid = bad_fields(
        {
            "namespace": namespace_ok(namespace),
            "page": effective_page >= 1,
            "page_size": 1 <= effective_size <= model.MAX_PAGE_SIZE,
            "twin_id": len(twin_id) <= model.MAX_TWIN_ID_CHARS,
        }
    )
    if not invalid and effective_page * effective_size > model.MAX_LIST_DEPTH:
        invalid.add("page")  # deeper than newest-first listing goes
    judge("memory.ListMemories", answer, invalid)
    if answer.code != OK:
        return
    reply = answer.reply
    assert (reply.page, reply.page_size) == (effective_page, effective_size)
    assert reply.namespace == (namespace or "default")
    assert len(reply.memories) <= effective_size
    assert reply.total_pages == math.ceil(reply.total_count / effective_size)
    assert all(not twin_id or m.agent_id == twin_id for m in reply.memories)


# -- DeleteMemory --------------------------------------------------------------------------

memory_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u).upper() + "}"),
    st.uuids().map(lambda u: u.urn),
    fz.odd_text(),
)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@given(memory_id=memory_ids, namespace=st.one_of(namespaces, odd_namespaces))
def test_delete_memory_refuses_what_is_not_a_memory_id(
    memory_service: Service, stub: Any, memory_id: str, namespace: str
) -> None:
    request = memory_pb2.DeleteMemoryRequest(memory_id=memory_id, namespace=namespace)
    answer = call(memory_service, "memory.DeleteMemory", stub.DeleteMemory, request)
    invalid = bad_fields({"namespace": namespace_ok(namespace), "memory_id": is_uuid(memory_id)})
    judge("memory.DeleteMemory", answer, invalid, valid_codes=(NOT_FOUND,))


@given(spelling=st.sampled_from(["canonical", "upper", "braces", "hex", "urn"]))
def test_delete_memory_deletes_by_every_spelling_of_its_id(
    memory_service: Service, stub: Any, spelling: str
) -> None:
    committed = call(
        memory_service,
        "memory.CommitMemory",
        stub.CommitMemory,
        memory_pb2.CommitMemoryRequest(content=f"to delete {spelling}", namespace="deletions"),
    )
    ident = uuid.UUID(committed.reply.memory_id)
    written = {
        "canonical": str(ident),
        "upper": str(ident).upper(),
        "braces": "{" + str(ident) + "}",
        "hex": ident.hex,
        "urn": ident.urn,
    }[spelling]
    request = memory_pb2.DeleteMemoryRequest(memory_id=written, namespace="deletions")
    answer = call(memory_service, "memory.DeleteMemory", stub.DeleteMemory, request)
    judge("memory.DeleteMemory", answer, set())
    assert answer.reply.success
    again = call(memory_service, "memory.DeleteMemory", stub.DeleteMemory, request)
    judge("memory.DeleteMemory", again, set(), valid_codes=(NOT_FOUND,))


# -- any bytes at all ----------------------------------------------------------------------

REQUESTS: dict[str, type[Any]] = {
    "QueryMemory": memory_pb2.QueryMemoryRequest,
    "CommitMemory": memory_pb2.CommitMemoryRequest,
    "ListMemories": memory_pb2.ListMemoriesRequest,
    "DeleteMemory": memory_pb2.DeleteMemoryRequest,
    "HealthCheck": memory_pb2.HealthCheckRequest,
}


@given(method=st.sampled_from(sorted(REQUESTS)), raw=fz.raw_messages())
@example(method="CommitMemory", raw=b"\x00")  # was UNKNOWN with the decoder's text
@example(method="QueryMemory", raw=b"\x0a\x02\xff\xfe")  # invalid UTF-8 in a string
def test_any_bytes_get_a_clear_status(memory_service: Service, method: str, raw: bytes) -> None:
    raw_call(
        memory_service,
        f"/memory.MemoryService/{method}",
        REQUESTS[method],
        raw,
        answers=(OK, grpc.StatusCode.INVALID_ARGUMENT, NOT_FOUND),
    )
