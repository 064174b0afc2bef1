"""Streamed replies from the orchestrator: chunks then the reply, slow and departing clients."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from phoenix_orchestrator.agent.replies import Replies
from phoenix_orchestrator.api import ChatResponse
from phoenix_orchestrator.app import create_app
from phoenix_orchestrator.planning.stream import AnswerStream
from phoenix_orchestrator.routes.streaming import ChunkQueue
from tests.gateway.servers import serve
from tests.orchestrator.conftest import (
    FakeClock,
    FakeLLM,
    GrpcPeers,
    SettingsFactory,
    Starter,
    action,
    metric_value,
    streamed,
)

TWIN, SESSION = "twin-sentinel", "sess-stream"
ANSWER = "The reactor overheated twice in March; both times the operators cut the feed."


def llm_settings(fake_llm: FakeLLM) -> dict[str, Any]:
    return {
        "llm_provider": "openrouter",
        "openrouter_api_key": "k-test",
        "openrouter_url": fake_llm.url,
        "openrouter_model": "test/model",
        "llm_max_attempts": 1,
    }


async def stream_lines(client: httpx.AsyncClient, message: str) -> list[dict[str, Any]]:
    lines = []
    async with client.stream(
        "POST",
        "/chat",
        json={"message": message, "twin_id": TWIN, "session_id": SESSION, "stream": True},
    ) as reply:
        assert reply.headers["content-type"] == "application/x-ndjson"
        async for line in reply.aiter_lines():
            if line:
                lines.append(json.loads(line))
    return lines


def test_only_an_answers_text_is_streamed_never_a_tools_arguments() -> None:
    answer, tool = AnswerStream(), AnswerStream()
    pieces = ['{"action_type":"ActionRes', 'ponse","details":{"con', 'tent":"Hel', "lo \\u00"]
    said = [answer.feed(p) for p in [*pieces, 'e9!"}}']]
    assert said == ["", "", "Hel", "lo ", "é!"]  # a half-received escape waits for its end
    written = '{"action_type":"ActionTool","details":{"tool_name":"file_write",'
    written += '"args":{"path":"a","content":"secret"}}}'
    assert {tool.feed(written[i : i + 7]) for i in range(0, len(written), 7)} == {""}
    fenced = AnswerStream()
    pieces = ["```json\n{", '"action_type":"ActionResponse",', '"details":{"content":"ok"}}\n```']
    assert "".join(fenced.feed(p) for p in pieces) == "ok"


async def test_a_slow_consumer_gets_waiting_chunks_merged() -> None:
    queue = ChunkQueue()
    for piece in ("a", "b", "c"):
        await queue.put(piece)
    queue.finish(ChatResponse(response="abc", job_id="j", actions_taken=[]), 200)
    lines = [json.loads(line) async for line in queue.lines()]
    assert lines[0] == {"type": "message_chunk", "content_chunk": "abc"}
    assert lines[1]["type"] == "complete"
    assert len(lines) == 2


async def test_streamed_text_joins_into_the_replys_text_over_several_steps() -> None:
    sent: list[str] = []

    async def sink(text: str) -> None:
        sent.append(text)

    replies = Replies(sink)
    await replies.add(ChatResponse(response="Tool ran.", job_id="j", actions_taken=["a"]))
    for piece in ("It ", "worked."):
        await replies.stream(piece)
    await replies.add(ChatResponse(response="It worked.", job_id="j2", actions_taken=["b"]))
    reply = replies.build(turn_id="t", steps=2)
    assert "".join(sent) == reply.response == "Tool ran.\n\nIt worked."
    assert reply.actions_taken == ["a", "b"]


async def test_an_llm_answer_streams_as_chunks_then_the_whole_reply(
    start: Starter, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [streamed(action("ActionResponse", content=ANSWER), pieces=12, delay=0.02)]
    async with start(**llm_settings(fake_llm)) as client:
        lines = await stream_lines(client, "what happened?")
    chunks = [line["content_chunk"] for line in lines if line["type"] == "message_chunk"]
    final = lines[-1]
    assert fake_llm.requests[0]["stream"] is True
    assert fake_llm.requests[0]["stream_options"] == {"include_usage": True}
    assert len(chunks) > 1
    assert "".join(chunks) == ANSWER
    assert (final["type"], final["status_code"]) == ("complete", 200)
    assert final["reply"]["response"] == ANSWER
    assert [line["type"] for line in lines].count("complete") == 1


async def test_a_streamed_turn_that_parks_a_call_ends_with_the_request(
    start: Starter, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [
        streamed(action("ActionTool", tool_name="command_exec", args={"cmd": "uptime"}))
    ]
    async with start(**llm_settings(fake_llm)) as client:
        lines = await stream_lines(client, "uptime?")
    chunks = [line["content_chunk"] for line in lines if line["type"] == "message_chunk"]
    reply = lines[-1]["reply"]
    assert "".join(chunks) == reply["response"]  # the tool's arguments never streamed
    assert "uptime" not in "".join(chunks)
    assert reply["issued_command"]["arguments"] == {"cmd": "uptime"}


async def test_errors_arrive_as_the_final_line_with_their_status(
    start: Starter, fake_llm: FakeLLM
) -> None:
    async with start(**llm_settings(fake_llm), llm_fallback_to_deterministic=False) as client:
        lines = await stream_lines(client, "anything")  # the fake answers 500 by default
    assert lines[-1]["status_code"] == 503
    assert lines[-1]["reply"]["error"]["code"] == "llm_unavailable"


async def test_a_slow_reader_still_gets_every_chunk_and_one_reply(
    start: Starter, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [streamed(action("ActionResponse", content=ANSWER), pieces=20)]
    async with (
        start(**llm_settings(fake_llm)) as client,
        client.stream(
            "POST",
            "/chat",
            json={"message": "slowly", "twin_id": TWIN, "session_id": SESSION, "stream": True},
        ) as reply,
    ):
        received = []
        async for line in reply.aiter_lines():
            if line:
                received.append(json.loads(line))
                await asyncio.sleep(0.05)  # a client that reads slowly
    chunks = [r["content_chunk"] for r in received if r["type"] == "message_chunk"]
    assert "".join(chunks) == ANSWER == received[-1]["reply"]["response"]
    assert [r["type"] for r in received].count("complete") == 1


async def test_a_client_that_leaves_cancels_the_planning_upstream(
    make_settings: SettingsFactory, fake_llm: FakeLLM, peers: GrpcPeers, clock: FakeClock
) -> None:
    """The LLM is still streaming when the client goes: the orchestrator hangs up on it."""
    fake_llm.script = [
        streamed(action("ActionResponse", content=ANSWER * 3), pieces=200, delay=0.05)
    ]
    settings = make_settings(**llm_settings(fake_llm), llm_timeout_seconds=30)
    app = create_app(settings, clock=clock)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/chat",
            json={"message": "long", "twin_id": TWIN, "session_id": SESSION, "stream": True},
        ) as reply:
            async for line in reply.aiter_lines():
                if line and json.loads(line)["type"] == "message_chunk":
                    break  # the first piece arrived; the client leaves
        deadline = time.monotonic() + 30
        while not fake_llm.aborted.is_set():
            assert not fake_llm.finished.is_set(), "the LLM streamed to the end: not cancelled"
            assert time.monotonic() < deadline, "the LLM connection was never closed"
            await asyncio.sleep(0.05)
        metrics = (await client.get("/metrics")).text
    assert fake_llm.pieces_sent < 200
    assert metric_value(metrics, "phoenix_orchestrator_chat_streams_cancelled_total") == 1
    assert metric_value(metrics, "phoenix_orchestrator_agent_steps_total", outcome="cancelled") == 1


@pytest.mark.parametrize("stream", [True, False])
async def test_streamed_and_whole_replies_say_the_same(
    start: Starter, fake_llm: FakeLLM, stream: bool
) -> None:
    fake_llm.script = [streamed(action("ActionResponse", content=ANSWER))]
    async with start(**llm_settings(fake_llm), llm_stream=stream) as client:
        reply = await client.post(
            "/chat", json={"message": "again", "twin_id": TWIN, "session_id": SESSION}
        )
    assert reply.json()["response"] == ANSWER
    assert fake_llm.requests[0].get("stream", False) is stream
