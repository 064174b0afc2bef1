"""Every kind of human decision through the typed API: edit, reason, session, stale, duplicate."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.orchestrator.conftest import GrpcPeers, Starter

TWIN, SESSION = "twin-sentinel", "sess-d"
PRINCIPAL = {"X-Phoenix-Principal": "api_key:3f9a1c0e8b7d"}
TOOL_POLICY = {
    "restricted": ["rm", "shutdown"],
    "twins": {"*": {"allowed": ["command_exec", "file_write"], "programs": ["*"]}},
}


async def chat(client: httpx.AsyncClient, message: str, session: str = SESSION) -> dict[str, Any]:
    reply = await client.post(
        "/chat", json={"message": message, "twin_id": TWIN, "session_id": session}
    )
    body: dict[str, Any] = reply.json()
    return body


async def decide(
    client: httpx.AsyncClient,
    request_id: str,
    verb: str = "approve",
    *,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        f"/v1/approvals/{request_id}/{verb}",
        json={"session_id": SESSION, "twin_id": TWIN, **body},
        headers=headers or PRINCIPAL,
    )


async def record(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/approvals/{request_id}")).json()
    return body


async def test_an_edited_call_runs_as_edited_and_both_versions_are_kept(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start(tool_policy_inline=TOOL_POLICY) as client:
        asked = await chat(client, "write a file")
        proposed_hash = asked["issued_command"]["arguments_hash"]
        ran = await decide(
            client,
            asked["request_id"],
            arguments={"cmd": "echo edited > test.txt"},
            arguments_hash=proposed_hash,
        )
        seen = await record(client, asked["request_id"])
    assert ran.status_code == 200, ran.text
    assert ran.json()["response"].startswith("Tool 'command_exec' executed successfully.")
    [sent] = peers.tools.requests
    assert list(sent.args) == ["echo edited > test.txt"]
    assert sent.metadata["arguments_hash"] == seen["approved_arguments_hash"]
    assert seen["status"] == "executed"
    assert seen["arguments"] == {"cmd": "echo hello world> test.txt"}
    assert seen["approved_arguments"] == {"cmd": "echo edited > test.txt"}
    assert seen["arguments_hash"] == proposed_hash
    assert seen["approved_arguments_hash"] not in (None, proposed_hash)
    assert (seen["decided_by"], seen["principal"]) == ("api_key:3f9a1c0e8b7d",) * 2
    approved = next(e for e in seen["audit"] if e["event"] == "approved")
    assert approved["principal"] == "api_key:3f9a1c0e8b7d"
    assert approved["arguments_hash"] == proposed_hash
    assert approved["detail"] == (
        f"edited: arguments {proposed_hash} -> {seen['approved_arguments_hash']}"
    )
    started = next(e for e in seen["audit"] if e["event"] == "started")
    assert started["arguments_hash"] == seen["approved_arguments_hash"]


async def test_an_edit_outside_the_schema_or_the_policy_is_refused_and_stays_pending(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start(
        tool_policy_inline=TOOL_POLICY,
        approval_policy={
            "rules": [{"tool": "command_exec", "action": "deny", "programs": ["curl"]}]
        },
    ) as client:
        asked = await chat(client, "write a file")
        rid = asked["request_id"]
        schema = await decide(client, rid, arguments={"cmd": "ls", "as_root": "yes"})
        restricted = await decide(client, rid, arguments={"cmd": "ls && rm -rf /"})
        denied_rule = await decide(client, rid, arguments={"cmd": "curl http://x"})
        still = await record(client, rid)
        finally_ok = await decide(client, rid)
    assert schema.status_code == 422
    assert "as_root: Extra inputs are not permitted" in schema.json()["response"]
    assert restricted.status_code == 403
    assert restricted.json()["error"]["code"] == "edit_refused"
    assert "Command 'rm' is restricted" in restricted.json()["response"]
    assert denied_rule.status_code == 403
    assert "approval policy denies it (rules[0])" in denied_rule.json()["response"]
    assert still["status"] == "pending"
    assert finally_ok.status_code == 200
    assert [list(r.args) for r in peers.tools.requests] == [["echo hello world> test.txt"]]


async def test_a_denial_reason_reaches_the_planner_which_answers(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start() as client:
        asked = await chat(client, "investigate the reactor")
        denied = await decide(client, asked["request_id"], "deny", reason="memory is off limits")
        seen = await record(client, asked["request_id"])
    body = denied.json()
    assert denied.status_code == 200
    assert body["response"] == (
        f"Memory request '{asked['request_id']}' denied.\n\n"
        "Understood; I did not go ahead. Denied by api_key:3f9a1c0e8b7d: the memory search "
        "was not run. Reason: memory is off limits"
    )
    assert body["steps"] == 2
    assert (seen["status"], seen["reason"]) == ("denied", "memory is off limits")
    assert peers.memory.requests == []


async def test_a_denial_by_chat_message_may_carry_a_reason(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start() as client:
        await chat(client, "write a file")
        plain = await chat(client, "[TOOL_DENIED] command_exec")
        await chat(client, "write a file")
        reasoned = await chat(client, "[TOOL_DENIED] command_exec - not on a Friday")
    assert plain["response"] == "Tool 'command_exec' execution denied."
    assert reasoned["response"].startswith("Tool 'command_exec' execution denied.\n\n")
    assert reasoned["response"].endswith("Reason: not on a Friday")
    assert peers.tools.requests == []


async def test_approving_for_the_session_runs_matching_calls_until_revoked(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start() as client:
        first = await chat(client, "run: ls -la", session=SESSION)  # deterministic: a reply
        assert "issued_command" not in first
        asked = await chat(client, "write a file")
        granted = await decide(client, asked["request_id"], scope="session")
        grant_id = granted.json()["grant_id"]
        again = await chat(client, "write another file")  # same program: echo
        grants = (await client.get("/v1/approvals/grants", params={"session_id": SESSION})).json()
        other_session = await chat(client, "write a file", session="sess-other")
        revoked = await client.post(
            f"/v1/approvals/grants/{grant_id}/revoke",
            json={"session_id": SESSION, "twin_id": TWIN},
            headers=PRINCIPAL,
        )
        after = await chat(client, "write a third file")
        auto = await record(client, again["request_id"])
    assert granted.status_code == 200
    assert again["response"].startswith("Tool 'command_exec' executed successfully.")
    assert "issued_command" not in again
    assert (auto["decided_by"], auto["grant_id"], auto["principal"]) == (
        f"grant:{grant_id}",
        grant_id,
        "api_key:3f9a1c0e8b7d",
    )
    [grant] = grants["grants"]
    assert grant["covers"] == "command_exec running echo"
    assert grant["uses"] == 1
    assert other_session["issued_command"]["command"] == "execute_tool"  # scoped to the session
    assert revoked.json()["revoked_by"] == "api_key:3f9a1c0e8b7d"
    assert after["issued_command"]["command"] == "execute_tool"  # revoked: asks again
    assert len(peers.tools.requests) == 2


async def test_a_session_grant_survives_a_restart(start: Starter, peers: GrpcPeers) -> None:
    async with start() as client:
        asked = await chat(client, "search the vault")
        await decide(client, asked["request_id"], scope="session")
    async with start() as client:
        again = await chat(client, "search the cellar")
    assert again["response"].startswith("Found 2 memory results for query 'search the cellar'")
    assert len(peers.memory.requests) == 2


async def test_stale_duplicate_and_cross_twin_decisions_are_refused_and_never_run_twice(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start() as client:
        asked = await chat(client, "write a file")
        rid = asked["request_id"]
        stale = await decide(client, rid, arguments_hash="0" * 64)
        foreign = await client.post(
            f"/v1/approvals/{rid}/approve",
            json={"session_id": SESSION, "twin_id": "twin-trace"},
            headers=PRINCIPAL,
        )
        first = await decide(client, rid)
        duplicate = await decide(client, rid)
        late_deny = await decide(client, rid, "deny", reason="too late")
        by_chat = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "approval_stale")
    assert "stale view" in stale.json()["response"]
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "approval_not_found")
    assert first.status_code == 200
    assert duplicate.status_code == late_deny.status_code == 409
    assert duplicate.json()["response"] == (
        f"Approval request '{rid}' (tool 'command_exec') was already executed by "
        f"api_key:3f9a1c0e8b7d at {duplicate.json()['response'].split(' at ')[1]}"
    )
    assert by_chat["actions_taken"] == ["no_pending_tool"]
    assert len(peers.tools.requests) == 1


async def test_racing_decisions_run_a_call_once(start: Starter, peers: GrpcPeers) -> None:
    async with start() as client:
        asked = await chat(client, "write a file")
        replies = await asyncio.gather(
            *(decide(client, asked["request_id"]) for _ in range(8)),
            decide(client, asked["request_id"], scope="session"),
            decide(client, asked["request_id"], "deny", reason="no"),
        )
    assert sorted(r.status_code for r in replies).count(200) == 1
    assert {r.status_code for r in replies} == {200, 409}
    assert len(peers.tools.requests) <= 1


async def test_decision_bodies_are_checked(start: Starter) -> None:
    async with start() as client:
        asked = await chat(client, "write a file")
        rid = asked["request_id"]
        session_deny = await decide(client, rid, "deny", scope="session")
        reason_approve = await decide(client, rid, reason="why not")
        bad_hash = await decide(client, rid, arguments_hash="xyz")
        still = await record(client, rid)
    assert session_deny.status_code == 422
    assert "approvals only" in session_deny.json()["response"]
    assert reason_approve.status_code == 422
    assert bad_hash.status_code == 422
    assert bad_hash.json()["error"]["details"][0]["loc"] == ["body", "arguments_hash"]
    assert still["status"] == "pending"
