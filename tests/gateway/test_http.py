"""The HTTP side: health without a key, the proxy with one, status codes passed through."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from phoenix_gateway.app import create_app
from phoenix_gateway.auth import key_id
from phoenix_gateway.settings import GatewaySettings
from tests.gateway.conftest import KEY_A, KEY_B, KEY_B2, Gateway
from tests.gateway.servers import serve


async def test_health_needs_no_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        reply = await client.get("/api/health")
    assert reply.status_code == 200
    assert reply.text == "Gateway operational"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-key-0123456789"}, {"X-API-Key": "nope"}],
    ids=["missing", "wrong-bearer", "wrong-x-api-key"],
)
async def test_proxy_refuses_a_missing_or_wrong_key_with_401(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        chat = await client.post("/api/chat", json={"message": "hi", "session_id": "s"})
        approvals = await client.get("/api/approvals", params={"session_id": "s"})
        whoami = await client.get("/api/whoami")
    assert [chat.status_code, approvals.status_code, whoami.status_code] == [401, 401, 401]
    assert chat.headers["www-authenticate"] == "Bearer"
    assert gateway.orchestrator.chats == []


@pytest.mark.parametrize(
    ("headers", "twin"),
    [
        ({"Authorization": f"Bearer {KEY_A}"}, "twin-a"),
        ({"X-API-Key": KEY_B}, "twin-b"),
        ({"X-API-Key": KEY_B2}, "twin-b"),
    ],
)
async def test_each_key_acts_for_its_own_twin(
    gateway: Gateway, headers: dict[str, str], twin: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        whoami = await client.get("/api/whoami")
        chat = await client.post("/api/chat", json={"message": "hi", "session_id": "s"})
    key = headers.get("X-API-Key") or headers["Authorization"].removeprefix("Bearer ")
    assert whoami.json() == {"twin_id": twin, "method": "api_key", "subject": subject_of(key)}
    assert chat.status_code == 200
    assert chat.json()["response"] == "I understand you said: 'hi'."
    assert gateway.orchestrator.chats[-1]["twin_id"] == twin
    assert gateway.orchestrator.headers[-1]["x-user-id"] == twin


async def test_a_key_cannot_act_for_another_twin(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": KEY_B}) as client:
        chat = await client.post(
            "/api/chat", json={"message": "hi", "session_id": "s", "twin_id": "twin-a"}
        )
        listing = await client.get(
            "/api/approvals", params={"session_id": "s", "twin_id": "twin-a"}
        )
        approve = await client.post(
            "/api/approvals/r-1/approve", json={"session_id": "s", "twin_id": "twin-a"}
        )
    assert [chat.status_code, listing.status_code, approve.status_code] == [403, 403, 403]
    assert gateway.orchestrator.chats == []
    assert gateway.orchestrator.approvals == []


async def test_upstream_status_codes_and_bodies_pass_through(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": KEY_A}) as client:
        invalid = await client.post("/api/chat", json={"message": "", "session_id": "s"})
        down = await client.post(
            "/api/chat", json={"message": "dependency down", "session_id": "s"}
        )
        bad_state = await client.get("/api/approvals", params={"state": "sideways"})
        unknown = await client.post("/api/approvals/unknown/deny", json={"session_id": "s"})
        no_session = await client.post("/api/approvals/r-1/deny", json={})
        not_json = await client.post("/api/chat", content=b"{oops")
    assert (invalid.status_code, invalid.json()) == (
        422,
        {"detail": "message must be a non-empty string"},
    )
    assert (down.status_code, down.json()) == (503, {"detail": "memory service unavailable"})
    assert bad_state.status_code == 422
    assert unknown.status_code == 404
    assert no_session.status_code == 422
    assert not_json.status_code == 422


async def test_approvals_are_forwarded_for_the_callers_twin(gateway: Gateway) -> None:
    gateway.orchestrator.pending = [
        {"request_id": "r-7", "twin_id": "twin-a", "session_id": "s-9"},
        {"request_id": "r-8", "twin_id": "twin-b", "session_id": "s-9"},
    ]
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": KEY_A}) as client:
        listing = await client.get("/api/approvals", params={"session_id": "s-9"})
        approve = await client.post(
            "/api/approvals/r-7/approve",
            json={"session_id": "s-9", "actor": "alice"},
            headers={"X-Phoenix-Principal": "jwt:root"},  # a caller cannot name itself
        )
        bogus = await client.post("/api/approvals/r-7/explode", json={"session_id": "s-9"})
        foreign = await client.post("/api/approvals/r-8/approve", json={"session_id": "s-9"})
    assert listing.json()["query"] == {"session_id": "s-9", "twin_id": "twin-a"}
    assert gateway.orchestrator.headers[0]["x-phoenix-principal"] == subject_of(KEY_A)
    assert gateway.orchestrator.headers[1]["x-phoenix-principal"] == subject_of(KEY_A)
    assert [p["request_id"] for p in listing.json()["pending"]] == ["r-7"]
    assert approve.status_code == 200
    assert approve.json()["response"] == "approved r-7"
    assert gateway.orchestrator.approvals == [
        {
            "id": "r-7",
            "decision": "approve",
            "session_id": "s-9",
            "actor": "alice",
            "twin_id": "twin-a",
        }
    ]
    assert bogus.status_code == 404
    assert foreign.status_code == 404  # twin B's request, though in the same session


async def test_an_unreachable_orchestrator_is_502(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    settings = settings_for(orchestrator_url="http://127.0.0.1:9")
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY_A}) as client,
    ):
        reply = await client.post("/api/chat", json={"message": "hi", "session_id": "s"})
    assert reply.status_code == 502
    assert reply.json() == {"detail": "orchestrator unavailable"}


async def test_metrics_are_exposed_without_tenant_data(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": KEY_A}) as client:
        await client.get("/api/whoami")
        metrics = await client.get("/metrics", headers={"X-API-Key": ""})
    assert metrics.status_code == 200
    assert (
        'phoenix_gateway_http_requests_total{app="gateway",method="GET",route="/api/whoami"'
        in metrics.text
    )
    assert "twin-a" not in metrics.text
    assert KEY_A not in metrics.text


async def test_query_tokens_are_refused_where_urls_are_traced(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        chat = await client.post(
            "/api/chat", params={"token": KEY_A}, json={"message": "hi", "session_id": "s"}
        )
        whoami = await client.get("/api/whoami", params={"token": KEY_A})
    assert (chat.status_code, whoami.status_code) == (401, 401)


def subject_of(key: str) -> str:
    """The audit's name for a key: never the key, a prefix of its SHA-256."""
    subject = f"api_key:{key_id(key)}"
    assert key not in subject
    assert len(key_id(key)) == 12
    return subject
