"""The bounded agent loop: scripted without a model, then against a chat-completions server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from phoenix_orchestrator.agent.loop import TurnCancelled, TurnControl
from phoenix_orchestrator.planning import deterministic
from tests.orchestrator.conftest import (
    FakeLLM,
    GrpcPeers,
    Starter,
    action,
    completion,
    metric_value,
)

TWIN, SESSION = "twin-sentinel", "sess-loop"


async def chat(client: httpx.AsyncClient, message: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.post(
            "/chat", json={"message": message, "twin_id": TWIN, "session_id": SESSION}
        )
    ).json()
    return body


def llm_settings(fake_llm: FakeLLM, **extra: Any) -> dict[str, Any]:
    return {
        "llm_provider": "openrouter",
        "openrouter_api_key": "k-test",
        "openrouter_url": fake_llm.url,
        "openrouter_model": "test/model",
        "llm_max_attempts": 1,
        **extra,
    }


def test_the_scripted_planner_investigates_in_three_steps() -> None:
    message = "investigate the reactor"
    first = deterministic.plan(message)
    second = deterministic.next_step(message, ["Memory search ... 2 result(s)."])
    third = deterministic.next_step(message, ["Memory: 2 results.", "Tool exit 0"])
    assert (first.action_type, first.details.query) == ("ActionMemory", "the reactor")  # type: ignore[union-attr]
    assert second is not None
    assert second.action_type == "ActionTool"
    assert second.details.args == {"cmd": "echo 'investigated: the reactor'"}
    assert third is not None
    assert third.action_type == "ActionResponse"
    assert deterministic.next_step(message, ["a", "b", "c"]) is None
    assert deterministic.next_step("search x", ["found"]) is None  # the original's one step


async def test_each_step_of_a_turn_needs_its_own_approval(start: Starter, peers: GrpcPeers) -> None:
    async with start() as client:
        first = await chat(client, "investigate the reactor")
        second = await chat(client, f"[MEMORY_SHOWN] {first['request_id']}")
        third = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
        steps = (
            await client.get("/v1/approvals", params={"twin_id": TWIN, "state": "executed"})
        ).json()
    assert first["issued_command"]["step"] == 1
    assert second["response"].startswith(
        "Found 2 memory results for query 'the reactor'. Top result: the vault code is 1234\n\n"
        "Authorization required to execute tool 'command_exec'."
    )
    assert second["issued_command"]["arguments"] == {"cmd": "echo 'investigated: the reactor'"}
    assert second["issued_command"]["step"] == 2
    assert second["turn_id"] == first["turn_id"] == third["turn_id"]
    assert third["response"].endswith(
        "Investigation of 'the reactor' finished after 2 steps. Memory: Memory search for "
        "'the reactor' returned 2 result(s). Tool: Tool command_exec finished with exit code 0 "
        "(success: Execution completed (elapsed_ms=3))."
    )
    assert third["steps"] == 3
    assert "issued_command" not in third
    assert [(i["step"], i["kind"]) for i in steps["items"]] == [(2, "tool"), (1, "memory")]
    assert len(peers.memory.requests) == len(peers.tools.requests) == 1


async def test_the_step_limit_ends_a_turn_that_would_go_on_for_ever(
    start: Starter, peers: GrpcPeers
) -> None:
    policy = {"rules": [{"tool": "memory", "action": "auto"}]}
    async with start(approval_policy=policy, agent_max_steps=3) as client:
        reply = await chat(client, "keep searching the archive")
        page = (await client.get("/v1/approvals", params={"twin_id": TWIN, "state": "all"})).json()
        metrics = (await client.get("/metrics")).text
    assert reply["actions_taken"][-1] == "agent_step_limit_reached"
    assert reply["response"].endswith(
        "Stopped after 3 steps: this twin's step limit (3) was reached."
    )
    assert reply["steps"] == 3
    assert [r.query for r in peers.memory.requests] == [
        "the archive",
        "the archive (pass 2)",
        "the archive (pass 3)",
    ]
    assert sorted(i["step"] for i in page["items"]) == [1, 2, 3]
    assert {i["turn_id"] for i in page["items"]} == {reply["turn_id"]}
    assert metric_value(metrics, "phoenix_orchestrator_agent_steps_total", outcome="limit") == 1
    assert metric_value(metrics, "phoenix_orchestrator_agent_steps_total", outcome="run") == 3


async def test_a_turn_paused_for_a_human_continues_after_a_restart(
    start: Starter, peers: GrpcPeers
) -> None:
    async with start() as client:
        first = await chat(client, "investigate the cellar")
    async with start() as client:
        second = await chat(client, f"[MEMORY_SHOWN] {first['request_id']}")
    assert second["issued_command"]["step"] == 2
    assert second["turn_id"] == first["turn_id"]


async def test_the_llm_sees_every_result_and_decides_the_next_step(
    start: Starter, fake_llm: FakeLLM, peers: GrpcPeers
) -> None:
    fake_llm.script = [
        completion(action("ActionMemory", query="reactor incidents")),
        completion(action("ActionTool", tool_name="command_exec", args={"cmd": "uptime"})),
        completion(action("ActionResponse", content="Two incidents; the box is up.")),
    ]
    async with start(**llm_settings(fake_llm)) as client:
        first = await chat(client, "what happened to the reactor?")
        second = await chat(client, f"[MEMORY_SHOWN] {first['request_id']}")
        third = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
    assert second["issued_command"]["arguments"] == {"cmd": "uptime"}
    assert third["response"].endswith("\n\nTwo incidents; the box is up.")
    assert third["planner"] == "llm"
    last = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert json.loads(last[2]["content"])["action_type"] == "ActionMemory"
    assert last[3]["content"].startswith(
        "Result of step 1:\nMemory search for 'reactor incidents' returned 2 result(s).\n"
        "1. the vault code is 1234\n2. the vault is in the cellar"
    )
    assert "Tool command_exec finished with exit code 0" in last[5]["content"]


async def test_the_llm_is_told_a_denial_and_its_reason(
    start: Starter, fake_llm: FakeLLM, peers: GrpcPeers
) -> None:
    fake_llm.script = [
        completion(action("ActionTool", tool_name="command_exec", args={"cmd": "reboot now"})),
        completion(action("ActionResponse", content="Fine, no reboot.")),
    ]
    async with start(**llm_settings(fake_llm)) as client:
        asked = await chat(client, "restart the box")
        denied = await client.post(
            f"/v1/approvals/{asked['request_id']}/deny",
            json={"session_id": SESSION, "reason": "it is serving traffic"},
            headers={"X-Phoenix-Principal": "jwt:alice"},
        )
    assert denied.json()["response"] == (
        "Tool 'command_exec' execution denied.\n\nFine, no reboot."
    )
    told = fake_llm.requests[-1]["messages"][-1]["content"]
    assert "Denied by jwt:alice: the tool 'command_exec' was not run." in told
    assert "Reason: it is serving traffic" in told
    assert peers.tools.requests == []


async def test_a_planner_failure_after_a_run_keeps_the_result(
    start: Starter, fake_llm: FakeLLM, peers: GrpcPeers
) -> None:
    """The tool ran; the LLM then fails (fallback off): the reply still reports the run."""
    fake_llm.script = [
        completion(action("ActionTool", tool_name="command_exec", args={"cmd": "uptime"}))
    ]
    async with start(**llm_settings(fake_llm, llm_fallback_to_deterministic=False)) as client:
        await chat(client, "uptime?")
        ran = await client.post(
            "/chat",
            json={
                "message": "[TOOL_EXECUTED] command_exec - CONFIRMED",
                "twin_id": TWIN,
                "session_id": SESSION,
            },
        )
    body = ran.json()
    assert ran.status_code == 200
    assert body["response"].startswith("Tool 'command_exec' executed successfully.")
    assert "The agent stopped: Orchestrator LLM planning failed" in body["response"]
    assert body["actions_taken"][-1] == "agent_stopped: llm_unavailable"
    assert len(peers.tools.requests) == 1


async def test_a_turn_nobody_can_stop_plans_in_its_own_task_and_a_stream_in_another() -> None:
    async def planning_task() -> asyncio.Task[Any] | None:
        return asyncio.current_task()

    whole = TurnControl(cancellable=False)
    assert await whole.planning(planning_task()) is asyncio.current_task()
    with pytest.raises(RuntimeError):
        whole.cancel()

    streamed = TurnControl()
    assert await streamed.planning(planning_task()) is not asyncio.current_task()
    streamed.cancel()
    never_planned = planning_task()
    with pytest.raises(TurnCancelled):
        await streamed.planning(never_planned)
    never_planned.close()
