"""The audit query: who decided what, when, on which arguments; by state, paged, per twin."""

from __future__ import annotations

from typing import Any

import httpx

from tests.orchestrator.conftest import FakeClock, Starter, metric_value


async def chat(client: httpx.AsyncClient, message: str, twin: str, session: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.post(
            "/chat", json={"message": message, "twin_id": twin, "session_id": session}
        )
    ).json()
    return body


async def page(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/v1/approvals", params=params)


async def test_requests_are_listed_by_state_newest_first_a_page_at_a_time(
    start: Starter, clock: FakeClock
) -> None:
    async with start() as client:
        made = []
        for n in range(5):
            made.append(await chat(client, f"search item {n}", "twin-a", "s1"))
            clock.advance(1)
        await chat(client, "search elsewhere", "twin-b", "s9")
        for asked in made[:2]:
            await client.post(
                f"/v1/approvals/{asked['request_id']}/deny",
                json={"session_id": "s1", "reason": "not now"},
                headers={"X-Phoenix-Principal": "jwt:alice"},
            )
        first = (await page(client, twin_id="twin-a", state="pending", limit=2)).json()
        second = (
            await page(client, twin_id="twin-a", state="pending", limit=2,
                       page_token=first["next_page_token"])
        ).json()  # fmt: skip
        denied = (await page(client, twin_id="twin-a", state="denied")).json()
        everything = (await page(client, twin_id="twin-a", state="all")).json()
        other_twin = (await page(client, twin_id="twin-b", state="all")).json()
        bad_token = await page(client, twin_id="twin-a", page_token="not-ours")  # noqa: S106 - a page token, not a secret
        nobody = await page(client, state="all")
        bad_state = await page(client, twin_id="twin-a", state="sideways")
    ids = [asked["request_id"] for asked in made]
    assert [i["request_id"] for i in first["items"]] == [ids[4], ids[3]]
    assert [p["request_id"] for p in first["pending"]] == [ids[4], ids[3]]
    assert [i["request_id"] for i in second["items"]] == [ids[2]]
    assert second["next_page_token"] is None
    assert [i["request_id"] for i in denied["items"]] == [ids[1], ids[0]]
    assert denied["pending"] == []
    one = denied["items"][0]
    assert (one["status"], one["reason"], one["decided_by"], one["principal"]) == (
        "denied",
        "not now",
        "jwt:alice",
        "jwt:alice",
    )
    assert one["decided_at"] == clock.now.isoformat().replace("+00:00", "Z")
    decided = one["audit"][-1]
    assert (decided["event"], decided["principal"], decided["arguments_hash"]) == (
        "denied",
        "jwt:alice",
        one["arguments_hash"],
    )
    assert len(everything["items"]) == 5
    assert {i["twin_id"] for i in other_twin["items"]} == {"twin-b"}
    assert bad_token.status_code == 422
    assert "page_token" in bad_token.json()["response"]
    assert nobody.status_code == 422
    assert bad_state.status_code == 422


async def test_one_request_is_read_with_its_trail_and_only_by_its_twin(start: Starter) -> None:
    async with start() as client:
        asked = await chat(client, "search the vault", "twin-a", "s1")
        own = await client.get(f"/v1/approvals/{asked['request_id']}", params={"twin_id": "twin-a"})
        foreign = await client.get(
            f"/v1/approvals/{asked['request_id']}", params={"twin_id": "twin-b"}
        )
    assert own.status_code == 200
    assert own.json()["audit"][0]["event"] == "requested"
    assert foreign.status_code == 404


async def test_outcomes_are_counted(start: Starter) -> None:
    async with start() as client:
        a = await chat(client, "write a file", "twin-a", "s1")
        b = await chat(client, "write a file", "twin-a", "s1")
        await client.post(f"/v1/approvals/{a['request_id']}/approve", json={"session_id": "s1"})
        await client.post(f"/v1/approvals/{a['request_id']}/approve", json={"session_id": "s1"})
        await client.post(f"/v1/approvals/{b['request_id']}/deny", json={"session_id": "s1"})
        await client.post(
            f"/v1/approvals/{b['request_id']}/approve",
            json={"session_id": "s1", "arguments_hash": "1" * 64},
        )
        text = (await client.get("/metrics")).text
    counted = {
        outcome: metric_value(
            text, "phoenix_orchestrator_approvals_total", kind="tool", outcome=outcome
        )
        for outcome in ("requested", "approved", "executed", "denied", "duplicate")
    }
    assert counted == {"requested": 2, "approved": 1, "executed": 1, "denied": 1, "duplicate": 2}
