"""The twin's approval policy and timeouts, end to end through /chat and the audit API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.orchestrator.conftest import FakeClock, GrpcPeers, Starter, metric_value

TWIN, SESSION = "twin-sentinel", "sess-p"


async def chat(client: httpx.AsyncClient, message: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.post(
            "/chat", json={"message": message, "twin_id": TWIN, "session_id": SESSION}
        )
    ).json()
    return body


async def record(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/approvals/{request_id}")).json()
    return body


async def eventually(check: Any, seconds: float = 30.0) -> None:
    """Poll ``check`` (async, truthy when done) until it holds or the deadline passes."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


async def test_auto_runs_without_asking_and_is_audited(start: Starter, peers: GrpcPeers) -> None:
    policy = {"rules": [{"tool": "command_exec", "action": "auto", "programs": ["echo"]}]}
    async with start(approval_policy=policy) as client:
        reply = await chat(client, "write a file")
        page = (await client.get("/v1/approvals", params={"twin_id": TWIN, "state": "all"})).json()
        metrics = (await client.get("/metrics")).text
    assert reply["response"].startswith("Tool 'command_exec' executed successfully.")
    assert "issued_command" not in reply
    [item] = page["items"]
    assert (item["status"], item["policy_rule"], item["decided_by"]) == (
        "executed",
        "auto:rules[0]",
        "policy",
    )
    assert [(e["event"], e["actor"], e["channel"]) for e in item["audit"]] == [
        ("requested", "deterministic", "planner"),
        ("approved", "policy", "policy"),
        ("started", "policy", "policy"),
        ("executed", "policy", "policy"),
    ]
    assert len(peers.tools.requests) == 1
    assert (
        metric_value(
            metrics,
            "phoenix_orchestrator_approvals_total",
            kind="tool",
            outcome="approved_by_policy",
        )
        == 1
    )


async def test_deny_never_runs_and_the_planner_hears_why(start: Starter, peers: GrpcPeers) -> None:
    policy = {"rules": [{"tool": "memory", "action": "deny"}]}
    async with start(approval_policy=policy) as client:
        reply = await chat(client, "investigate the reactor")
        page = await client.get("/v1/approvals", params={"twin_id": TWIN, "state": "denied"})
    assert reply["response"] == (
        "The memory search was not run: denied by the twin's approval policy (rules[0]).\n\n"
        "Understood; I did not go ahead. Denied by the twin's approval policy: the memory "
        "search was not run (denied by the twin's approval policy (rules[0]))."
    )
    [item] = page.json()["items"]
    assert (item["status"], item["policy_rule"]) == ("denied", "deny:rules[0]")
    assert peers.memory.requests == []


async def test_conditions_narrow_auto_and_an_unreadable_command_asks(
    start: Starter, peers: GrpcPeers, fake_llm: Any
) -> None:
    """The deterministic planner only proposes echo, so the LLM proposes the others."""
    from tests.orchestrator.conftest import action, completion

    fake_llm.script = [
        completion(action("ActionTool", tool_name="command_exec", args={"cmd": "ls -la"})),
        completion(action("ActionTool", tool_name="command_exec", args={"cmd": "ls $(id)"})),
        completion(action("ActionTool", tool_name="command_exec", args={"cmd": "uptime"})),
    ]
    policy = {
        "defaultAction": "ask",
        "rules": [{"tool": "command_exec", "action": "auto", "programs": ["ls"]}],
    }
    async with start(
        approval_policy=policy,
        llm_provider="openrouter",
        openrouter_api_key="k-test",
        openrouter_url=fake_llm.url,
        agent_max_steps=1,
    ) as client:
        listed = await chat(client, "list files")
        hidden = await chat(client, "list something clever")
        uptime = await chat(client, "how long up?")
    assert listed["response"].startswith("Tool 'command_exec' executed successfully.")
    assert hidden["issued_command"]["command"] == "execute_tool"
    assert uptime["issued_command"]["arguments"] == {"cmd": "uptime"}
    assert [list(r.args) for r in peers.tools.requests] == [["ls -la"]]


async def test_expired_requests_are_denied_by_the_sweep_while_running(
    start: Starter, clock: FakeClock, peers: GrpcPeers
) -> None:
    policy = {"timeoutSeconds": 60, "onTimeout": "deny"}
    async with start(approval_policy=policy, approval_sweep_seconds=0.02) as client:
        asked = await chat(client, "write a file")
        assert asked["issued_command"]["on_timeout"] == "deny"
        clock.advance(61)

        async def expired() -> bool:
            return bool((await record(client, asked["request_id"]))["status"] == "expired")

        await eventually(expired)
        seen = await record(client, asked["request_id"])
        late = await client.post(
            f"/v1/approvals/{asked['request_id']}/approve", json={"session_id": SESSION}
        )
    assert [e["event"] for e in seen["audit"]] == ["requested", "expired"]
    assert (seen["audit"][-1]["actor"], seen["audit"][-1]["channel"]) == ("timeout", "sweep")
    assert late.status_code == 409
    assert peers.tools.requests == []


async def test_on_timeout_approve_runs_the_call_once_in_the_background(
    start: Starter, clock: FakeClock, peers: GrpcPeers
) -> None:
    policy = {
        "rules": [{"tool": "memory", "action": "ask", "timeoutSeconds": 30, "onTimeout": "approve"}]
    }
    async with start(approval_policy=policy, approval_sweep_seconds=0.02) as client:
        asked = await chat(client, "search the vault")
        assert asked["issued_command"]["on_timeout"] == "approve"
        clock.advance(31)

        async def executed() -> bool:
            return bool((await record(client, asked["request_id"]))["status"] == "executed")

        await eventually(executed)
        seen = await record(client, asked["request_id"])
        await asyncio.sleep(0.1)  # more sweeps pass; none may run it again
        metrics = (await client.get("/metrics")).text
    assert seen["decided_by"] == "timeout"
    assert seen["result"].startswith("Found 2 memory results")
    assert [e["event"] for e in seen["audit"]] == ["requested", "approved", "started", "executed"]
    assert len(peers.memory.requests) == 1
    assert (
        metric_value(
            metrics,
            "phoenix_orchestrator_approvals_total",
            kind="memory",
            outcome="approved_on_timeout",
        )
        == 1
    )


async def test_a_late_decision_on_an_expired_request_applies_its_timeout_first(
    start: Starter, clock: FakeClock, peers: GrpcPeers
) -> None:
    """The sweep has not run yet (a long interval): the decision itself finds it overdue."""
    policy = {"timeoutSeconds": 10, "onTimeout": "approve"}
    async with start(approval_policy=policy, approval_sweep_seconds=3600) as client:
        asked = await chat(client, "write a file")
        clock.advance(11)
        denied = await client.post(
            f"/v1/approvals/{asked['request_id']}/deny", json={"session_id": SESSION}
        )

        async def executed() -> bool:
            return bool((await record(client, asked["request_id"]))["status"] == "executed")

        await eventually(executed)
    assert denied.status_code == 410
    assert "its timeout action (approve) applied" in denied.json()["response"]
    assert len(peers.tools.requests) == 1
