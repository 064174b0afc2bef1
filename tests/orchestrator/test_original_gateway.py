"""The original system's gateway in front of this orchestrator, in every chat flow.

``OriginalGateway`` does what original-system.md §4 says its gateway does with a
chat frame: ``POST /chat`` with ``namespace: null`` and ``X-User-ID``, any non-2xx
shown as a raw ``status_update`` error, a 2xx body read as the original's
``OrchestratorResponse`` and wrapped in a ``complete_message`` (``source_memories``
carrying ``actions_taken``, ``latency_ms`` 0). Each flow checks the frame its UI
would show: a conversational outcome must arrive as a chat message, never as
``Orchestrator returned error status ...``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.orchestrator.conftest import GrpcPeers

TWIN = "twin-sentinel"
ORIGINAL_RESPONSE_FIELDS = {
    "response",
    "job_id",
    "actions_taken",
    "status",
    "issued_command",
    "raw_orchestrator_decision",
}


class OriginalGateway:
    """The original gateway's per-frame handling, §4 steps 3 to 6."""

    def __init__(self, client: httpx.AsyncClient, session_id: str) -> None:
        self.client = client
        self.session_id = session_id

    async def frame(self, message: str) -> dict[str, Any]:
        body = {"message": message, "twin_id": TWIN, "session_id": self.session_id}
        reply = await self.client.post(
            "/chat",
            content=json.dumps({**body, "namespace": None}),
            headers={"Content-Type": "application/json", "X-User-ID": TWIN},
        )
        if not reply.is_success:
            return {
                "type": "status_update",
                "status": "error",
                "details": "Orchestrator error: Orchestrator returned error status "
                f"{reply.status_code}: {reply.text}",
            }
        decoded = reply.json()
        # Its serde struct: these fields, these types; anything else is ignored.
        assert isinstance(decoded["response"], str)
        assert decoded["job_id"] is None or isinstance(decoded["job_id"], str)
        assert all(isinstance(action, str) for action in decoded["actions_taken"])
        assert decoded["status"] in ("completed", "error")
        orchestrator = {k: v for k, v in decoded.items() if k in ORIGINAL_RESPONSE_FIELDS}
        frame = {
            "type": "complete_message",
            "id": str(uuid.uuid4()),
            "content": orchestrator["response"],
            "is_final": True,
            "latency_ms": 0,
            "source_memories": orchestrator["actions_taken"],
            "issued_command": orchestrator.get("issued_command"),
        }
        if orchestrator.get("raw_orchestrator_decision") is not None:
            frame["raw_orchestrator_decision"] = orchestrator["raw_orchestrator_decision"]
        return frame


def assert_chat_line(frame: dict[str, Any], content: str) -> None:
    assert frame["type"] == "complete_message", frame
    assert frame["content"] == content


async def test_a_plain_message_is_answered(client: httpx.AsyncClient) -> None:
    gateway = OriginalGateway(client, "s-plain")
    assert_chat_line(await gateway.frame("hello"), "I understand you said: 'hello'.")


async def test_memory_shown_and_denied(client: httpx.AsyncClient, peers: GrpcPeers) -> None:
    gateway = OriginalGateway(client, "s-memory")
    asked = await gateway.frame("search the vault")
    command = asked["issued_command"]
    assert command["command"] == "show_memory_page"
    assert command["query"] == "search the vault"
    assert json.loads(asked["raw_orchestrator_decision"])["action_type"] == "ActionMemory"
    shown = await gateway.frame(f"[MEMORY_SHOWN] {command['memory_id']}")
    assert_chat_line(
        shown,
        "Found 2 memory results for query 'search the vault'. Top result: the vault code is 1234",
    )
    assert shown["issued_command"] is None
    assert peers.memory.requests[0].namespace == "default"  # namespace null -> "default"

    again = await gateway.frame("search the cellar")
    memory_id = again["issued_command"]["memory_id"]
    denied = await gateway.frame(f"[MEMORY_DENIED] {memory_id}")
    assert_chat_line(denied, f"Memory request '{memory_id}' denied.")
    assert len(peers.memory.requests) == 1


async def test_tool_executed_and_denied(client: httpx.AsyncClient, peers: GrpcPeers) -> None:
    gateway = OriginalGateway(client, "s-tool")
    asked = await gateway.frame("write a file")
    command = asked["issued_command"]
    assert (command["command"], command["tool_name"], command["arguments"]) == (
        "execute_tool",
        "command_exec",
        {"cmd": "echo hello world> test.txt"},
    )
    ran = await gateway.frame(f"[TOOL_EXECUTED] {command['tool_name']} - CONFIRMED")
    assert_chat_line(ran, "Tool 'command_exec' executed successfully. Output:\nhello world")

    await gateway.frame("write a file")
    denied = await gateway.frame("[TOOL_DENIED] command_exec")
    assert_chat_line(denied, "Tool 'command_exec' execution denied.")
    assert len(peers.tools.requests) == 1


async def test_approving_with_nothing_pending_is_a_chat_reply(client: httpx.AsyncClient) -> None:
    gateway = OriginalGateway(client, "s-nothing")
    tool = await gateway.frame("[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert_chat_line(tool, "No pending tool request found to execute.")
    memory = await gateway.frame("[MEMORY_SHOWN] 0b6f9a43-0000-4000-8000-000000000000")
    assert_chat_line(memory, "No pending memory request found to execute.")


async def test_approving_another_tool_is_a_chat_reply_and_keeps_the_pending_one(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    gateway = OriginalGateway(client, "s-mismatch")
    await gateway.frame("write a file")
    mismatch = await gateway.frame("[TOOL_EXECUTED] file_write - CONFIRMED")
    assert_chat_line(
        mismatch, "Tool authorization mismatch: pending='command_exec' but received='file_write'"
    )
    assert peers.tools.requests == []
    # Stronger than the original (which dropped it): the pending call is still there.
    ran = await gateway.frame("[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert ran["content"].startswith("Tool 'command_exec' executed successfully.")


async def test_a_denial_naming_another_tool_clears_what_is_pending(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    gateway = OriginalGateway(client, "s-clear")
    await gateway.frame("write a file")
    denied = await gateway.frame("[TOOL_DENIED] file_write")
    assert_chat_line(denied, "Tool 'file_write' execution denied.")
    after = await gateway.frame("[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert_chat_line(after, "No pending tool request found to execute.")
    assert peers.tools.requests == []


async def test_a_malformed_request_is_still_an_error(client: httpx.AsyncClient) -> None:
    """Malformed bodies are errors, as the original's JSON extractor made them."""
    reply = await client.post(
        "/chat",
        content=json.dumps({"message": "hi", "session_id": "s", "namespace": None}),
        headers={"Content-Type": "application/json", "X-User-ID": TWIN},
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "invalid_input"
