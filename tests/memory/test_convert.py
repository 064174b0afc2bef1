"""Request validation is pure: proto in, domain request or a clear InvalidInput out."""

from __future__ import annotations

import pytest

from phoenix_common.errors import InvalidInput
from phoenix_common.stubs import memory_pb2
from phoenix_memory import convert, model


def commit(**fields: object) -> memory_pb2.CommitMemoryRequest:
    values: dict[str, object] = {"content": "the reactor is stable", "namespace": "ops"}
    values.update(fields)
    return memory_pb2.CommitMemoryRequest(**values)  # type: ignore[arg-type]


def test_commit_defaults_memory_type_and_risk_level() -> None:
    item = convert.new_memory(commit(namespace=""))
    assert (item.memory_type, item.risk_level, item.namespace) == ("Episodic", "Low", "default")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"content": ""}, "content must not be empty"),
        ({"content": "   \n"}, "content must not be empty"),
        ({"content": "x" * (32 * 1024 + 1)}, "at most 32768 bytes"),
        ({"content": "é" * (16 * 1024 + 1)}, "at most 32768 bytes"),
        ({"namespace": "../etc"}, "namespace '../etc' is invalid"),
        ({"namespace": "a/b"}, "namespace 'a/b' is invalid"),
        ({"namespace": ".hidden"}, "namespace '.hidden' is invalid"),
        ({"memory_type": "Dream"}, "memory_type 'Dream' is not one of Episodic"),
        ({"risk_level": "low"}, "risk_level 'low' is not one of Low, Medium, High, Critical"),
        ({"twin_id": "t" * 257}, "twin_id is 257 characters long"),
        ({"metadata": {f"k{i}": "v" for i in range(33)}}, "metadata has 33 entries"),
        ({"metadata": {"k": "v" * 4097}}, "metadata value of 'k' is longer than 4096 bytes"),
        ({"metadata": {"k" * 129: "v"}}, "metadata key"),
    ],
)
def test_commit_rejects_bad_input_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(".", r"\.")):
        convert.new_memory(commit(**fields))


def test_content_of_exactly_32_kib_is_accepted() -> None:
    assert len(convert.new_memory(commit(content="x" * 32 * 1024)).content) == 32 * 1024


@pytest.mark.parametrize(("top_k", "expected"), [(0, 10), (1, 1), (100, 100)])
def test_query_top_k_zero_means_ten(top_k: int, expected: int) -> None:
    request = memory_pb2.QueryMemoryRequest(query="q", namespace="ops", top_k=top_k)
    assert convert.memory_query(request).top_k == expected


@pytest.mark.parametrize("top_k", [-1, 101, 5000])
def test_query_top_k_out_of_range_is_invalid(top_k: int) -> None:
    request = memory_pb2.QueryMemoryRequest(query="q", namespace="ops", top_k=top_k)
    with pytest.raises(InvalidInput, match=f"top_k must be between 1 and 100.*got {top_k}"):
        convert.memory_query(request)


def test_query_filters_dedupe_and_validate_memory_types() -> None:
    request = memory_pb2.QueryMemoryRequest(
        query="q", twin_id="twin-1", memory_types=["Semantic", "Semantic", "Reflection"]
    )
    query = convert.memory_query(request)
    assert query.filter == model.MemoryFilter("twin-1", ("Semantic", "Reflection"))
    with pytest.raises(InvalidInput, match="memory_types entry 'semantic'"):
        convert.memory_query(memory_pb2.QueryMemoryRequest(query="q", memory_types=["semantic"]))


def test_query_text_must_not_be_empty() -> None:
    with pytest.raises(InvalidInput, match="query must not be empty"):
        convert.memory_query(memory_pb2.QueryMemoryRequest(query=""))


def test_list_paging_defaults_and_bounds() -> None:
    listing = convert.list_request(memory_pb2.ListMemoriesRequest())
    assert (listing.page, listing.page_size, listing.offset) == (1, 20, 0)
    assert convert.list_request(memory_pb2.ListMemoriesRequest(page=3, page_size=7)).offset == 14
    for bad, message in (
        ({"page": -1}, "page must be 1 or more"),
        ({"page_size": 101}, "page_size must be between 1 and 100"),
        ({"page": 101, "page_size": 100}, "past the first 10000 memories"),
    ):
        with pytest.raises(InvalidInput, match=message):
            convert.list_request(memory_pb2.ListMemoriesRequest(**bad))  # type: ignore[arg-type]


def test_memory_id_must_be_a_uuid() -> None:
    assert convert.memory_id("6F9619FF-8B86-D011-B42D-00C04FC964FF") == (
        "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    )
    with pytest.raises(InvalidInput, match="memory_id 'nope' is not a UUID"):
        convert.memory_id("nope")


def test_payload_round_trip_keeps_the_originals_keys() -> None:
    item = convert.new_memory(commit(twin_id="twin-1", metadata={"source": "a.md"}))
    from datetime import UTC, datetime

    memory = model.Memory(
        id="6f9619ff-8b86-d011-b42d-00c04fc964ff",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        content=item.content,
        twin_id=item.twin_id,
        memory_type=item.memory_type,
        risk_level=item.risk_level,
        metadata=item.metadata,
    )
    payload = memory.to_payload()
    assert payload["timestamp"] == "2026-01-02T03:04:05.678Z"
    assert set(payload) == {
        "id", "timestamp", "created_at_ms", "content", "twin_id", "memory_type", "risk_level",
        "metadata",
    }  # fmt: skip
    assert model.Memory.from_payload(memory.id, payload) == memory
    result = convert.memory_result(memory, 0.75)
    assert (result.agent_id, result.similarity, dict(result.metadata)) == (
        "twin-1",
        0.75,
        {"source": "a.md"},
    )
