"""Decisions and streamed replies through the gateway, in front of the real orchestrator.

The orchestrator is the real app on a real port (uvicorn), with the in-test
gRPC peers of the real memory and tools protos, and, for streaming, a local
server speaking the chat-completions protocol (tests/orchestrator/conftest.py).
Every decision kind goes in over the WebSocket or the HTTP API as a client sends
it, and the orchestrator's audit says who decided: the gateway's principal.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from phoenix_gateway.app import create_app as create_gateway
from phoenix_gateway.auth import key_id
from phoenix_gateway.settings import GatewaySettings
from phoenix_orchestrator.app import create_app as create_orchestrator
from phoenix_orchestrator.settings import OrchestratorSettings
from tests.gateway.conftest import KEY_A, KEY_B
from tests.gateway.servers import serve
from tests.orchestrator import conftest as orchestrator_fixtures
from tests.orchestrator.conftest import (
    FakeClock,
    FakeLLM,
    GrpcPeers,
    action,
    metric_value,
    streamed,
)
from tests.stress.load import BuildLoad

# The orchestrator tests' fixtures, registered here under their own names (peers, fake_llm).
peers = orchestrator_fixtures.peers
fake_llm = orchestrator_fixtures.fake_llm

SESSION = "sess-live"
SUBJECT_A = f"api_key:{key_id(KEY_A)}"
TOOL_POLICY = {
    "restricted": ["rm", "shutdown"],
    "twins": {"*": {"allowed": ["command_exec", "file_write"], "programs": ["*"]}},
}


@asynccontextmanager
async def stack_and_orchestrator(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    clock: Callable[[], datetime] | None = None,
    **orchestrator: Any,
) -> AsyncIterator[tuple[str, str]]:
    """The real orchestrator behind a gateway; yields (gateway URL, orchestrator URL)."""
    settings = OrchestratorSettings(
        _env_file=None,
        state_dir=tmp_path / "orchestrator",
        memory_grpc_addr=peers.memory_addr,
        tools_grpc_addr=peers.tools_addr,
        tool_policy_inline=TOOL_POLICY,
        log_format="text",
        **orchestrator,
    )
    async with (
        serve(
            create_orchestrator(settings, clock=clock)
            if clock is not None
            else create_orchestrator(settings)
        ) as orchestrator_url,
        serve(
            create_gateway(
                settings_for(orchestrator_url=orchestrator_url, upstream_timeout_seconds=30)
            )
        ) as url,
    ):
        yield url, orchestrator_url


@asynccontextmanager
async def stack(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    clock: Callable[[], datetime] | None = None,
    **orchestrator: Any,
) -> AsyncIterator[str]:
    """The real orchestrator behind a gateway; yields the gateway's URL."""
    async with stack_and_orchestrator(tmp_path, settings_for, peers, clock, **orchestrator) as (
        url,
        _,
    ):
        yield url


def llm_settings(llm: FakeLLM) -> dict[str, Any]:
    return {
        "llm_provider": "openai",
        "openrouter_url": llm.url,
        "openrouter_api_key": "sk-test",
        "llm_fallback_to_deterministic": False,
        "llm_max_attempts": 1,
    }


def socket(url: str, twin: str = "twin-a", key: str = KEY_A, query: str = "") -> Any:
    ws_url = url.replace("http://", "ws://") + f"/ws/chat/{twin}{query}"
    return connect(ws_url, additional_headers={"X-API-Key": key})


async def say(ws: ClientConnection, message: str, twin: str = "twin-a") -> dict[str, Any]:
    await ws.send(json.dumps({"session_id": SESSION, "user_id": twin, "message": message}))
    return await frame(ws)


async def decide(ws: ClientConnection, request_id: str, decision: str, **fields: Any) -> Any:
    twin = fields.pop("twin", "twin-a")
    await ws.send(
        json.dumps(
            {
                "type": "approval_decision",
                "session_id": SESSION,
                "user_id": twin,
                "request_id": request_id,
                "decision": decision,
                **fields,
            }
        )
    )
    return await frame(ws)


async def frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(30):
        got: dict[str, Any] = json.loads(await ws.recv())
    return got


async def test_every_decision_kind_over_the_websocket(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
) -> None:
    async with stack(tmp_path, settings_for, peers) as url, socket(url) as ws:
        # Edited: the call runs as edited; the reply is the run's.
        asked = (await say(ws, "write a file"))["issued_command"]
        edited = await decide(
            ws,
            asked["request_id"],
            "approve",
            arguments={"cmd": "echo edited > test.txt"},
            arguments_hash=asked["arguments_hash"],
        )
        again = await decide(ws, asked["request_id"], "approve")  # a duplicate
        # Denied with a reason.
        denied_id = (await say(ws, "write a file"))["issued_command"]["request_id"]
        denied = await decide(ws, denied_id, "deny", reason="not on a Friday")
        # Stale: decided on another version of the arguments.
        stale_id = (await say(ws, "write a file"))["issued_command"]["request_id"]
        stale = await decide(ws, stale_id, "approve", arguments_hash="0" * 64)
        # For the session: the next identical call runs without asking.
        session_id = (await say(ws, "write a file"))["issued_command"]["request_id"]
        granted = await decide(ws, session_id, "approve", scope="session")
        runs_before = len(peers.tools.requests)
        covered = await say(ws, "write a file")
        runs_after = len(peers.tools.requests)
        # Another twin's key cannot decide twin-a's pending request.
        async with socket(url, "twin-b", KEY_B) as other:
            foreign = await decide(other, stale_id, "approve", twin="twin-b")
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY_A}) as http:
            trail = (await http.get(f"/api/approvals/{denied_id}")).json()
            edited_trail = (await http.get(f"/api/approvals/{asked['request_id']}")).json()
            still_pending = (await http.get(f"/api/approvals/{stale_id}")).json()
    assert edited["type"] == "complete_message"
    assert edited["content"].startswith("Tool 'command_exec' executed successfully.")
    assert list(peers.tools.requests[0].args) == ["echo edited > test.txt"]
    assert edited_trail["approved_arguments"] == {"cmd": "echo edited > test.txt"}
    assert edited_trail["arguments"] != edited_trail["approved_arguments"]
    assert (edited_trail["decided_by"], edited_trail["principal"]) == (SUBJECT_A, SUBJECT_A)
    assert again["status"] == "error"
    assert "already" in again["content"]
    assert (trail["status"], trail["reason"], trail["principal"]) == (
        "denied",
        "not on a Friday",
        SUBJECT_A,
    )
    assert denied["type"] == "complete_message"
    assert stale["status"] == "error"
    assert "stale" in stale["content"]
    assert granted["content"].startswith("Tool 'command_exec' executed successfully.")
    assert covered.get("issued_command") is None  # no prompt: the grant covered it
    assert runs_after == runs_before + 1
    assert foreign["status"] == "error"
    assert still_pending["status"] == "pending"  # the foreign decision changed nothing
    assert len(peers.tools.requests) == 3  # edited, session, covered: nothing twice


async def test_http_decisions_grants_and_the_audit_query(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
) -> None:
    chat = {"message": "write a file", "session_id": SESSION}
    async with (
        stack(tmp_path, settings_for, peers) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY_A}) as http,
    ):
        asked = (await http.post("/api/chat", json=chat)).json()
        granted = await http.post(
            f"/api/approvals/{asked['request_id']}/approve",
            json={"session_id": SESSION, "scope": "session", "actor": "someone-else"},
        )
        grants = (await http.get("/api/approvals/grants", params={"session_id": SESSION})).json()
        revoked = await http.post(
            f"/api/approvals/grants/{granted.json()['grant_id']}/revoke",
            json={"session_id": SESSION},
        )
        asks_again = (await http.post("/api/chat", json=chat)).json()
        executed = (await http.get("/api/approvals", params={"state": "executed"})).json()
        pending = (await http.get("/api/approvals")).json()
    assert granted.status_code == 200, granted.text
    assert [g["grant_id"] for g in grants["grants"]] == [granted.json()["grant_id"]]
    assert revoked.status_code == 200, revoked.text
    assert asks_again["issued_command"]["command"] == "execute_tool"  # revoked: it asks
    [done] = executed["items"]
    assert (done["request_id"], done["principal"]) == (asked["request_id"], SUBJECT_A)
    assert [p["request_id"] for p in pending["pending"]] == [asks_again["request_id"]]


async def test_a_streamed_reply_arrives_in_chunks_then_whole(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    fake_llm: FakeLLM,
) -> None:
    answer = "The vault is in the cellar, behind the third barrel from the left."
    held = streamed(action("ActionResponse", content=answer), pieces=12)
    held.hold_after = 9  # the model pauses mid-answer until the first chunk is seen
    fake_llm.script = [held, streamed(action("ActionResponse", content=answer), pieces=12)]
    async with stack(tmp_path, settings_for, peers, **llm_settings(fake_llm)) as url:
        async with socket(url, query="?stream=true") as ws:
            await ws.send(json.dumps({"session_id": SESSION, "user_id": "twin-a", "message": "q"}))
            frames = [await frame(ws)]
            model_was_done = fake_llm.finished.is_set()
            fake_llm.release.set()
            while frames[-1]["type"] == "message_chunk":
                frames.append(await frame(ws))
        async with socket(url) as plain:  # a client that never asked for chunks
            whole = await say(plain, "q")
    *chunks, complete = frames
    assert chunks
    assert not model_was_done  # the first piece arrived while the model was still writing
    assert "".join(c["content_chunk"] for c in chunks) == answer
    assert complete["type"] == "complete_message"
    assert complete["content"] == answer
    assert {c["id"] for c in chunks} == {complete["id"]}
    assert whole["type"] == "complete_message"
    assert whole["content"] == answer
    assert all(r.get("stream") is True for r in fake_llm.requests)


async def test_a_slow_websocket_client_gets_every_piece(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    fake_llm: FakeLLM,
) -> None:
    answer = "word " * 200
    fake_llm.script = [streamed(action("ActionResponse", content=answer), pieces=50)]
    async with (
        stack(tmp_path, settings_for, peers, **llm_settings(fake_llm)) as url,
        socket(url, query="?stream=true") as ws,
    ):
        await ws.send(json.dumps({"session_id": SESSION, "user_id": "twin-a", "message": "q"}))
        await asyncio.to_thread(fake_llm.finished.wait, 30)  # not read while it was made
        frames = [await frame(ws)]
        while frames[-1]["type"] == "message_chunk":
            frames.append(await frame(ws))
    *chunks, complete = frames
    assert fake_llm.finished.is_set()
    assert "".join(c["content_chunk"] for c in chunks) == answer == complete["content"]


async def test_a_websocket_client_that_leaves_stops_the_model(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    fake_llm: FakeLLM,
) -> None:
    long_answer = action("ActionResponse", content="x" * 4000)
    fake_llm.script = [streamed(long_answer, pieces=400, delay=0.05)]
    async with stack(tmp_path, settings_for, peers, **llm_settings(fake_llm)) as url:
        async with socket(url, query="?stream=true") as ws:
            await ws.send(json.dumps({"session_id": SESSION, "user_id": "twin-a", "message": "q"}))
            first = await frame(ws)
        aborted = await asyncio.to_thread(fake_llm.aborted.wait, 30)
    assert first["type"] == "message_chunk"
    assert aborted
    assert not fake_llm.finished.is_set()
    assert fake_llm.pieces_sent < 400


async def test_server_sent_events_stream_and_stop_on_disconnect(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    fake_llm: FakeLLM,
) -> None:
    answer = "Streamed over HTTP, piece by piece."
    held = streamed(action("ActionResponse", content=answer), pieces=6)
    held.hold_after = 5
    fake_llm.script = [
        held,
        streamed(action("ActionResponse", content="y" * 4000), pieces=400, delay=0.05),
    ]
    body = {"message": "q", "session_id": SESSION, "stream": True}
    async with (
        stack(tmp_path, settings_for, peers, **llm_settings(fake_llm)) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY_A}, timeout=30) as http,
    ):
        async with http.stream("POST", "/api/chat", json=body) as streaming:
            lines = streaming.aiter_lines()
            head = [await anext(lines), await anext(lines)]  # the first event, model held
            model_was_done = fake_llm.finished.is_set()
            fake_llm.release.set()
            rest = [line async for line in lines]
        whole_text = "\n".join(head + rest)
        fake_llm.finished.clear()
        async with http.stream("POST", "/api/chat", json=body) as leaving:
            async for line in leaving.aiter_lines():
                if line.startswith("data:"):
                    break  # one event, then the client goes away
        aborted = await asyncio.to_thread(fake_llm.aborted.wait, 30)
        no_session = await http.post("/api/chat", json={"message": "q", "stream": True})
        # Refused upstream after the 200 went out: the refusal is the final event.
        empty = parse_sse((await http.post("/api/chat", json={**body, "message": ""})).text)
    events = parse_sse(whole_text)
    assert streaming.headers["content-type"].startswith("text/event-stream")
    assert head[0] == "event: message_chunk"
    assert not model_was_done
    names = [name for name, _ in events]
    assert names[-1] == "complete_message"
    assert set(names[:-1]) == {"message_chunk"}
    assert "".join(data["content_chunk"] for _, data in events[:-1]) == answer
    assert events[-1][1]["content"] == answer
    assert aborted
    assert not fake_llm.finished.is_set()  # the second answer was never written to the end
    assert no_session.status_code == 422
    assert "session_id" in no_session.text
    [(name, refused)] = empty
    assert (name, refused["status"]) == ("complete_message", "error")


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_policy_the_agent_loop_its_limit_and_a_timeout_through_the_gateway(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
) -> None:
    clock = FakeClock()
    policy = {
        "rules": [
            {"tool": "command_exec", "action": "deny", "programs": ["curl"]},
            {"tool": "memory", "action": "auto"},
            {"tool": "file_write", "action": "ask", "timeoutSeconds": 30, "onTimeout": "deny"},
        ]
    }
    async with (
        stack(
            tmp_path,
            settings_for,
            peers,
            clock,
            approval_policy=policy,
            agent_max_steps=3,
            approval_sweep_seconds=0.02,
        ) as url,
        socket(url) as ws,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY_A}) as http,
    ):
        # investigate: the memory step runs by policy, the tool step asks, then the answer.
        investigating = await say(ws, "investigate the reactor")
        tool_step = investigating["issued_command"]
        finished = await decide(ws, tool_step["request_id"], "approve")
        # keep searching: memory is auto, so only the step limit ends the turn.
        limited = await say(ws, "keep searching the archive")
        # A request nobody decides is denied by the sweep once its timeout has passed.
        waiting = (await say(ws, "write a file"))["issued_command"]
        clock.advance(3600)
        deadline = time.monotonic() + 30
        while (await http.get(f"/api/approvals/{waiting['request_id']}")).json()[
            "status"
        ] != "expired":
            assert time.monotonic() < deadline, "the sweep never expired the request"
            await asyncio.sleep(0.05)
        expired = (await http.get("/api/approvals", params={"state": "expired"})).json()
        auto_runs = (await http.get("/api/approvals", params={"state": "executed"})).json()
    assert tool_step["command"] == "execute_tool"
    assert tool_step["step"] == 2
    assert "Found 2 memory results" in investigating["content"]
    assert "Investigation of 'the reactor' finished after 2 steps." in finished["content"]
    assert limited["actions_taken"][-1] == "agent_step_limit_reached"
    assert limited["content"].endswith("this twin's step limit (3) was reached.")
    assert [item["request_id"] for item in expired["items"]] == [waiting["request_id"]]
    by_policy = [i for i in auto_runs["items"] if i["decided_by"] == "policy"]
    assert len(by_policy) == 1 + 3  # investigate's search and the three searches of the loop
    assert {i["policy_rule"] for i in by_policy} == {"auto:rules[1]"}


async def test_decisions_are_counted_by_outcome(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
) -> None:
    async with (
        stack_and_orchestrator(tmp_path, settings_for, peers) as (url, orchestrator_url),
        socket(url) as ws,
    ):
        once = (await say(ws, "write a file"))["issued_command"]
        await decide(ws, once["request_id"], "approve", arguments={"cmd": "echo edited"})
        await decide(ws, once["request_id"], "approve")
        denied = (await say(ws, "write a file"))["issued_command"]
        await decide(ws, denied["request_id"], "deny", reason="no")
        session = (await say(ws, "write a file"))["issued_command"]
        await decide(ws, session["request_id"], "approve", scope="session")
        await say(ws, "write a file")
        stale = (await say(ws, "search the vault"))["issued_command"]
        await decide(ws, stale["request_id"], "approve", arguments_hash="1" * 64)
        async with httpx.AsyncClient(base_url=orchestrator_url) as direct:
            text = (await direct.get("/metrics")).text
    counted = {
        (kind, outcome): metric_value(
            text, "phoenix_orchestrator_approvals_total", kind=kind, outcome=outcome
        )
        for kind, outcome in [
            ("tool", "approved_edited"),
            ("tool", "duplicate"),
            ("tool", "denied"),
            ("tool", "approved_for_session"),
            ("tool", "approved_by_grant"),
            ("memory", "stale"),
        ]
    }
    assert counted == dict.fromkeys(counted, 1.0)


STREAM_CYCLES = int(os.environ.get("PHOENIX_STREAM_CYCLES", "20"))


@pytest.fixture
def build_load() -> Iterator[BuildLoad]:
    with BuildLoad() as load:
        yield load


@pytest.mark.stress
async def test_streams_that_finish_and_streams_that_are_left_under_load(
    tmp_path: Path,
    settings_for: Callable[..., GatewaySettings],
    peers: GrpcPeers,
    fake_llm: FakeLLM,
    build_load: BuildLoad,
) -> None:
    """Streamed replies in turn read to the end and left after the first chunk, under
    build-like load: every finished one is whole (its chunks join into its content, one id),
    every left one is cancelled at the orchestrator, and the socket path keeps working.
    The model is held mid-answer for the ones that leave, so a leave always comes first.
    ``PHOENIX_STREAM_CYCLES`` sets the number of pairs (20)."""
    answer = "A streamed answer under load. " * 20
    for _ in range(STREAM_CYCLES):
        fake_llm.script.append(streamed(action("ActionResponse", content=answer), pieces=30))
        held = streamed(action("ActionResponse", content="z" * 4000), pieces=40)
        held.hold_after = 1  # the first piece holds the start of the content
        fake_llm.script.append(held)
    fake_llm.default = streamed(action("ActionResponse", content="still here"), pieces=2)
    broken: list[str] = []
    async with stack_and_orchestrator(tmp_path, settings_for, peers, **llm_settings(fake_llm)) as (
        url,
        orchestrator_url,
    ):
        for cycle in range(STREAM_CYCLES):
            async with socket(url, query="?stream=true") as ws:
                await ws.send(
                    json.dumps({"session_id": SESSION, "user_id": "twin-a", "message": "q"})
                )
                frames = [await frame(ws)]
                while frames[-1]["type"] == "message_chunk":
                    frames.append(await frame(ws))
            *chunks, complete = frames
            joined = "".join(c["content_chunk"] for c in chunks)
            if (joined, complete["content"], {c["id"] for c in chunks}) != (
                answer,
                answer,
                {complete["id"]},
            ):
                broken.append(f"cycle {cycle}: {len(chunks)} chunks, {complete['content'][:40]!r}")
            async with socket(url, query="?stream=true") as leaving:
                await leaving.send(
                    json.dumps({"session_id": SESSION, "user_id": "twin-a", "message": "q"})
                )
                first = await frame(leaving)
                assert first["type"] == "message_chunk", first
        async with httpx.AsyncClient(base_url=orchestrator_url) as direct:
            deadline = time.monotonic() + 60
            while True:
                text = (await direct.get("/metrics")).text
                cancelled = metric_value(text, "phoenix_orchestrator_chat_streams_cancelled_total")
                if cancelled >= STREAM_CYCLES or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        fake_llm.release.set()  # the held model threads finish (into closed connections)
        async with socket(url) as ws:
            after = await say(ws, "q")
    assert broken == []
    assert cancelled == STREAM_CYCLES
    assert after["content"] == "still here"
