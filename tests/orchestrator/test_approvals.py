"""Human in the loop: nothing reaches memory or tools without an approval."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from phoenix_orchestrator.app import create_app
from tests.orchestrator.conftest import FakeClock, GrpcPeers, SettingsFactory, serving

SESSION = {"twin_id": "twin-sentinel", "session_id": "sess-1"}


async def chat(client: httpx.AsyncClient, message: str, **extra: Any) -> httpx.Response:
    return await client.post("/chat", json={"message": message, **SESSION, **extra})


async def decide(
    client: httpx.AsyncClient, request_id: str, verb: str, session_id: str = "sess-1"
) -> httpx.Response:
    return await client.post(
        f"/v1/approvals/{request_id}/{verb}", json={"session_id": session_id, "actor": "alice"}
    )


async def test_memory_query_waits_for_approval_then_runs(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    asked = (await chat(client, "search for the vault code")).json()
    command = asked["issued_command"]
    assert command["command"] == "show_memory_page"
    assert command["query"] == "search for the vault code"
    assert command["memory_id"] == asked["request_id"]
    assert asked["actions_taken"] == [f"Memory authorization requested: {asked['request_id']}"]
    assert asked["raw_orchestrator_decision"]
    assert peers.memory.requests == []

    shown = await chat(client, f"[MEMORY_SHOWN] {command['memory_id']}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["response"] == (
        "Found 2 memory results for query 'search for the vault code'. "
        "Top result: the vault code is 1234"
    )
    assert body["actions_taken"] == ["Memory query authorized: 2 results"]
    assert body["source_memories"] == ["mem-1", "mem-2"]
    assert "issued_command" not in body
    [sent] = peers.memory.requests
    assert (sent.query, sent.namespace, sent.twin_id, sent.top_k) == (
        "search for the vault code",
        "default",
        "twin-sentinel",
        10,
    )


async def test_memory_query_uses_the_requests_namespace(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    asked = (await chat(client, "find notes", namespace="threat_intel_v24")).json()
    await chat(client, f"[MEMORY_SHOWN] {asked['request_id']}")
    assert peers.memory.requests[0].namespace == "threat_intel_v24"


async def test_tool_run_waits_for_approval_then_executes_with_the_original_args(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    asked = (await chat(client, "write a file please")).json()
    command = asked["issued_command"]
    assert command == {
        "command": "execute_tool",
        "tool_name": "command_exec",
        "arguments": {"cmd": "echo hello world> test.txt"},
        "request_id": asked["request_id"],
        "expires_at": command["expires_at"],
    }
    assert asked["response"] == (
        "Authorization required to execute tool 'command_exec'. Please approve or deny in the UI."
    )
    assert peers.tools.requests == []

    ran = (await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")).json()
    assert ran["response"] == "Tool 'command_exec' executed successfully. Output:\nhello world"
    assert ran["actions_taken"] == [
        "Tool execution: command_exec authorized",
        "Tool execution: command_exec completed",
    ]
    assert ran["tool_result"]["execution_id"] == "exec-1"
    [sent] = peers.tools.requests
    assert sent.command == "command_exec"
    assert list(sent.args) == ["echo hello world> test.txt"]
    assert (sent.twin_id, sent.namespace) == ("twin-sentinel", "default")
    assert sent.job_id == ran["job_id"]
    assert sent.metadata["request_id"] == asked["request_id"]
    assert sent.metadata["approved_by"] == "twin-sentinel"


async def test_failed_tool_run_reports_the_tools_message(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    peers.tools.reply.success = False
    peers.tools.reply.exit_code = 1
    peers.tools.reply.message = "Twin 'twin-sentinel' is not authorized to execute 'x'"
    del peers.tools.reply.stderr_logs[:]
    await chat(client, "write a file")
    ran = (await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")).json()
    assert ran["response"] == (
        "Tool 'command_exec' execution failed: "
        "Twin 'twin-sentinel' is not authorized to execute 'x'"
    )
    assert ran["actions_taken"][-1] == "Tool execution: command_exec failed"


async def test_denials_discard_without_running_anything(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    tool = (await chat(client, "write a file")).json()
    memory = (await chat(client, "search stuff")).json()

    denied_tool = (await chat(client, "[TOOL_DENIED] command_exec")).json()
    assert denied_tool["response"] == "Tool 'command_exec' execution denied."
    assert denied_tool["actions_taken"] == ["Tool denied: command_exec"]
    denied_memory = (await chat(client, f"[MEMORY_DENIED] {memory['request_id']}")).json()
    assert denied_memory["response"] == f"Memory request '{memory['request_id']}' denied."

    nothing_left = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert (nothing_left.status_code, nothing_left.json()["status"]) == (200, "error")
    assert nothing_left.json()["response"] == "No pending tool request found to execute."
    again = await decide(client, tool["request_id"], "approve")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "approval_already_decided"
    assert peers.tools.requests == []
    assert peers.memory.requests == []


async def test_no_pending_request_is_a_chat_reply_with_the_original_wording(
    client: httpx.AsyncClient,
) -> None:
    """A conversational outcome: HTTP 200, status "error", the original's strings."""
    tool = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert (tool.status_code, tool.json()["status"]) == (200, "error")
    assert tool.json()["response"] == "No pending tool request found to execute."
    assert tool.json()["actions_taken"] == ["no_pending_tool"]
    assert tool.json()["error"]["code"] == "approval_not_found"
    memory = await chat(client, "[MEMORY_SHOWN] nothing")
    assert (memory.status_code, memory.json()["status"]) == (200, "error")
    assert memory.json()["response"] == "No pending memory request found to execute."
    assert memory.json()["actions_taken"] == ["no_pending_memory"]


async def test_mismatched_name_or_id_keeps_the_pending_request(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    """Defect 11: a mismatch no longer throws the pending request away."""
    tool = (await chat(client, "write a file")).json()
    memory = (await chat(client, "search vault")).json()

    wrong_tool = await chat(client, "[TOOL_EXECUTED] file_write - CONFIRMED")
    assert (wrong_tool.status_code, wrong_tool.json()["status"]) == (200, "error")
    assert wrong_tool.json()["actions_taken"] == ["tool_authorization_mismatch"]
    assert wrong_tool.json()["response"] == (
        "Tool authorization mismatch: pending='command_exec' but received='file_write'"
    )
    wrong_memory = await chat(client, "[MEMORY_SHOWN] not-the-id")
    assert (wrong_memory.status_code, wrong_memory.json()["status"]) == (200, "error")
    assert wrong_memory.json()["actions_taken"] == ["memory_authorization_mismatch"]
    assert wrong_memory.json()["response"] == (
        f"Memory authorization mismatch: pending='{memory['request_id']}' but received='not-the-id'"
    )

    pending = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
    assert {p["request_id"] for p in pending["pending"]} == {
        tool["request_id"],
        memory["request_id"],
    }
    ran = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert (ran.status_code, ran.json()["status"]) == (200, "completed")
    shown = await chat(client, f"[MEMORY_SHOWN] {memory['request_id']}")
    assert (shown.status_code, shown.json()["status"]) == (200, "completed")
    assert len(peers.tools.requests) == 1
    assert len(peers.memory.requests) == 1


async def test_a_tool_denial_clears_whatever_tool_is_pending(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    """The original's [TOOL_DENIED] removed the pending tool whatever name it carried."""
    first = (await chat(client, "write a file")).json()
    second = (await chat(client, "write another file")).json()
    memory = (await chat(client, "search vault")).json()

    denied = await chat(client, "[TOOL_DENIED] vector_query")
    assert (denied.status_code, denied.json()["status"]) == (200, "completed")
    assert denied.json()["response"] == "Tool 'vector_query' execution denied."
    assert denied.json()["actions_taken"] == ["Tool denied: vector_query"]
    pending = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
    assert [p["request_id"] for p in pending["pending"]] == [memory["request_id"]]
    for request_id in (first["request_id"], second["request_id"]):
        assert (await decide(client, request_id, "approve")).status_code == 409
    nothing = (await chat(client, "[TOOL_DENIED] command_exec")).json()
    assert (nothing["status"], nothing["response"]) == (
        "completed",
        "Tool 'command_exec' execution denied.",
    )
    assert peers.tools.requests == []


async def test_a_memory_denial_with_another_id_clears_the_pending_memory_request(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    memory = (await chat(client, "search vault")).json()
    tool = (await chat(client, "write a file")).json()
    denied = (await chat(client, "[MEMORY_DENIED] some-other-id")).json()
    assert denied["response"] == "Memory request 'some-other-id' denied."
    assert denied["actions_taken"] == ["Memory denied: some-other-id"]
    assert denied["request_id"] == memory["request_id"]
    pending = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
    assert [p["request_id"] for p in pending["pending"]] == [tool["request_id"]]
    assert peers.memory.requests == []


async def test_many_pending_requests_per_session_are_each_approvable(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    """Defect 10: a second request no longer overwrites the first."""
    first = (await chat(client, "search alpha")).json()
    second = (await chat(client, "search beta")).json()
    third = (await chat(client, "write file")).json()
    listed = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
    assert [p["request_id"] for p in listed["pending"]] == [
        third["request_id"],
        second["request_id"],
        first["request_id"],
    ]
    assert listed["pending"][0]["issued_command"]["command"] == "execute_tool"
    assert listed["pending"][1]["query"] == "search beta"

    assert (await chat(client, f"[MEMORY_SHOWN] {first['request_id']}")).status_code == 200
    assert (await decide(client, second["request_id"], "deny")).status_code == 200
    assert [r.query for r in peers.memory.requests] == ["search alpha"]
    listed = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
    assert [p["request_id"] for p in listed["pending"]] == [third["request_id"]]


async def test_typed_api_approves_and_denies_by_request_id(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    memory = (await chat(client, "find the vault")).json()
    tool = (await chat(client, "write a file")).json()

    approved = await decide(client, memory["request_id"], "approve")
    assert approved.status_code == 200
    assert approved.json()["source_memories"] == ["mem-1", "mem-2"]
    assert approved.json()["request_id"] == memory["request_id"]

    denied = await decide(client, tool["request_id"], "deny")
    assert denied.status_code == 200
    assert denied.json()["response"] == "Tool 'command_exec' execution denied."
    assert peers.tools.requests == []


async def test_typed_api_rejects_unknown_ids_other_sessions_and_bad_bodies(
    client: httpx.AsyncClient,
) -> None:
    memory = (await chat(client, "find the vault")).json()
    assert (await decide(client, "no-such-id", "approve")).status_code == 404
    other = await decide(client, memory["request_id"], "approve", session_id="sess-2")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "approval_not_found"
    bad = await client.post(f"/v1/approvals/{memory['request_id']}/approve", json={"actor": "a"})
    assert bad.status_code == 422
    extra = await client.post(
        f"/v1/approvals/{memory['request_id']}/approve",
        json={"session_id": "sess-1", "actor": "a", "force": True},
    )
    assert extra.status_code == 422
    missing = await client.get("/v1/approvals")
    assert missing.status_code == 422


async def test_typed_api_scoped_to_a_twin_does_not_find_another_twins_request(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    memory = (await chat(client, "find the vault")).json()
    url = f"/v1/approvals/{memory['request_id']}/approve"
    foreign = await client.post(
        url, json={"session_id": "sess-1", "actor": "mallory", "twin_id": "twin-trace"}
    )
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "approval_not_found"
    assert peers.memory.requests == []
    own = await client.post(
        url, json={"session_id": "sess-1", "actor": "alice", "twin_id": "twin-sentinel"}
    )
    assert own.status_code == 200
    assert len(peers.memory.requests) == 1


async def test_requests_of_another_twin_cannot_be_approved_by_chat(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    await chat(client, "write a file")
    other = await client.post(
        "/chat",
        json={
            "message": "[TOOL_EXECUTED] command_exec - CONFIRMED",
            "twin_id": "twin-trace",
            "session_id": "sess-1",
        },
    )
    assert (other.status_code, other.json()["status"]) == (200, "error")
    assert other.json()["actions_taken"] == ["no_pending_tool"]
    assert peers.tools.requests == []


async def test_expired_requests_get_a_clear_reply_and_410_from_the_api(
    client: httpx.AsyncClient, clock: FakeClock, peers: GrpcPeers
) -> None:
    memory = (await chat(client, "search the vault")).json()
    tool = (await chat(client, "write a file")).json()
    clock.advance(601)

    listed = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
    assert listed["pending"] == []
    by_chat = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert (by_chat.status_code, by_chat.json()["status"]) == (200, "error")
    assert by_chat.json()["error"]["code"] == "approval_expired"
    assert "expired" in by_chat.json()["response"]
    assert by_chat.json()["actions_taken"] == ["approval_expired"]
    by_api = await decide(client, memory["request_id"], "approve")
    assert by_api.status_code == 410
    assert by_api.json()["error"]["code"] == "approval_expired"
    assert (await decide(client, tool["request_id"], "approve")).status_code == 409
    assert peers.tools.requests == []
    assert peers.memory.requests == []


async def test_requests_are_still_approvable_just_before_expiry(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    memory = (await chat(client, "search the vault")).json()
    clock.advance(599)
    assert (await decide(client, memory["request_id"], "approve")).status_code == 200


async def test_pending_requests_survive_a_restart(
    make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock
) -> None:
    """Defect 10: pending approvals were lost when the orchestrator restarted."""
    settings = make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=peers.tools_addr)
    async with serving(create_app(settings, clock=clock)) as first:
        memory = (await chat(first, "search the vault")).json()
        tool = (await chat(first, "write a file")).json()

    async with serving(create_app(settings, clock=clock)) as second:
        listed = (await second.get("/v1/approvals", params={"session_id": "sess-1"})).json()
        assert {p["request_id"] for p in listed["pending"]} == {
            memory["request_id"],
            tool["request_id"],
        }
        assert (
            listed["pending"][0]["raw_orchestrator_decision"] == tool["raw_orchestrator_decision"]
        )
        assert (await chat(second, f"[MEMORY_SHOWN] {memory['request_id']}")).status_code == 200
        assert (await chat(second, "[TOOL_EXECUTED] command_exec - CONFIRMED")).status_code == 200
    assert len(peers.memory.requests) == 1
    assert len(peers.tools.requests) == 1


async def test_every_decision_is_audited(
    make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock
) -> None:
    settings = make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=peers.tools_addr)
    app = create_app(settings, clock=clock)
    async with serving(app) as client:
        memory = (await chat(client, "search the vault")).json()
        tool = (await chat(client, "write a file")).json()
        await chat(client, "[TOOL_EXECUTED] file_write - CONFIRMED")
        await decide(client, memory["request_id"], "approve")
        await chat(client, "[TOOL_DENIED] command_exec")
        store = app.state.store
        memory_trail = await store.audit_trail(memory["request_id"])
        tool_trail = await store.audit_trail(tool["request_id"])
    assert [(e.event, e.actor, e.channel) for e in memory_trail] == [
        ("requested", "deterministic", "planner"),
        ("approved", "alice", "api"),
        ("executed", "alice", "api"),
    ]
    assert [(e.event, e.actor, e.channel) for e in tool_trail] == [
        ("requested", "deterministic", "planner"),
        ("mismatch", "twin-sentinel", "chat"),
        ("denied", "twin-sentinel", "chat"),
    ]
    assert memory_trail[1].at == clock.now


async def test_actor_comes_from_the_x_user_id_header(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    await chat(client, "write a file")
    await client.post(
        "/chat",
        json={"message": "[TOOL_EXECUTED] command_exec - CONFIRMED", **SESSION},
        headers={"X-User-ID": "bob"},
    )
    assert peers.tools.requests[0].metadata["approved_by"] == "bob"


async def test_concurrent_approvals_run_the_tool_once(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    tool = (await chat(client, "write a file")).json()
    replies = await asyncio.gather(
        decide(client, tool["request_id"], "approve"),
        chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED"),
        decide(client, tool["request_id"], "deny"),
    )
    assert sum(reply.json()["status"] == "completed" for reply in replies) == 1
    assert len(peers.tools.requests) <= 1


async def test_startup_expires_overdue_requests_and_prunes_old_history(
    make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock
) -> None:
    settings = make_settings(approval_retention_days=1)
    app = create_app(settings, clock=clock)
    async with serving(app) as client:
        old = (await chat(client, "search the vault")).json()
        denied = (await chat(client, "write a file")).json()
        await decide(client, denied["request_id"], "deny")

    clock.advance(700)
    second = create_app(settings, clock=clock)
    async with serving(second):
        store = second.state.store
        expired = await store.get(old["request_id"])
        assert expired is not None
        assert expired.status == "expired"
        assert [e.event for e in await store.audit_trail(old["request_id"])][-1] == "expired"
        assert await store.get(denied["request_id"]) is not None

    clock.advance(2 * 24 * 3600)
    restarted = create_app(settings, clock=clock)
    async with serving(restarted) as client:
        fresh = (await chat(client, "search again")).json()
        store = restarted.state.store
        assert await store.get(old["request_id"]) is None
        assert await store.get(denied["request_id"]) is None
        assert await store.audit_trail(denied["request_id"]) == []
        assert (await store.get(fresh["request_id"])) is not None
