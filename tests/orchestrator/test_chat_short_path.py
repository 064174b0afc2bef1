"""``POST /chat``'s short path (``routes.chat.ChatShortPath``) answers exactly as the route.

An untraced app answers ``POST /chat`` in the short path; a traced one takes the
Starlette route (its span is named after it). The same requests, sent to one of each,
must get the same status, content type and body, errors included.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.datastructures import State
from starlette.types import Message, Receive, Scope, Send

from phoenix_orchestrator.api import ChatResponse
from phoenix_orchestrator.app import create_app
from phoenix_orchestrator.errors import BackendUnavailable
from phoenix_orchestrator.routes.chat import TRACED_SCOPE_KEY, ChatShortPath
from tests.orchestrator.conftest import FakeClock, GrpcPeers, SettingsFactory

SESSION = {"twin_id": "twin-aegis", "session_id": "s1"}
# Each a list of requests sent in order (later ones may answer earlier ones).
CASES: dict[str, list[dict[str, Any]]] = {
    "plain": [{"json": {"message": "Hello", **SESSION}}],
    "builtin": [{"json": {"message": "what date is it?", **SESSION}}],
    "memory approval asked": [{"json": {"message": "search the vault for keys", **SESSION}}],
    "nothing pending (conversational)": [
        {"json": {"message": "[TOOL_EXECUTED] command_exec", **SESSION}}
    ],
    "asked then denied": [
        {"json": {"message": "search the vault", **SESSION}},
        {"json": {"message": "[MEMORY_DENIED] not now", **SESSION}},
    ],
    "empty message": [{"json": {"message": "", **SESSION}}],
    "missing twin": [{"json": {"message": "hi", "session_id": "s"}}],
    "malformed json": [{"content": b"{not json", "headers": {"content-type": "application/json"}}],
    "empty body": [{"content": b""}],
    "streamed": [{"json": {"message": "Hello", "stream": True, **SESSION}}],
}
IDS = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def _answer(reply: httpx.Response) -> tuple[int, str, str]:
    """Status, content type and body, with the random ids (job, request, turn) masked."""
    return reply.status_code, reply.headers["content-type"], IDS.sub("<id>", reply.text)


@asynccontextmanager
async def _apps(
    make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock, state: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, InMemorySpanExporter]]:
    """An untraced and a traced orchestrator, each with its own state."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    peers_at = {"memory_grpc_addr": peers.memory_addr, "tools_grpc_addr": peers.tools_addr}
    short = create_app(make_settings(state_dir=state / "short", **peers_at), clock=clock)
    routed = create_app(
        make_settings(state_dir=state / "routed", **peers_at), clock=clock, tracer_provider=provider
    )
    async with (
        short.router.lifespan_context(short),
        routed.router.lifespan_context(routed),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=short, raise_app_exceptions=False),
            base_url="http://orchestrator",
        ) as short_client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=routed, raise_app_exceptions=False),
            base_url="http://orchestrator",
        ) as routed_client,
    ):
        yield short_client, routed_client, exporter


@pytest.mark.parametrize("case", list(CASES))
async def test_the_short_path_answers_as_the_route(
    case: str,
    make_settings: SettingsFactory,
    peers: GrpcPeers,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    async with _apps(make_settings, peers, clock, tmp_path) as (short, routed, exporter):
        for request in CASES[case]:
            short_reply = await short.post("/chat", **request)
            routed_reply = await routed.post("/chat", **request)
            assert _answer(short_reply) == _answer(routed_reply)
    # The traced app's requests went through the route: their spans carry its template.
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans if span.kind.name == "SERVER"] == ["POST /chat"] * len(
        CASES[case]
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [(BackendUnavailable("memory is down"), 503), (RuntimeError("secret detail"), 500)],
)
async def test_errors_the_service_raises_are_answered_as_by_the_route(
    *,
    error: Exception,
    status: int,
    make_settings: SettingsFactory,
    peers: GrpcPeers,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    class Broken:
        async def chat(self, *_: object, **__: object) -> None:
            raise error

    async with _apps(make_settings, peers, clock, tmp_path) as (short, routed, _):
        replies = []
        for client in (short, routed):
            transport = client._transport
            assert isinstance(transport, httpx.ASGITransport)
            transport.app.state.chat = Broken()  # type: ignore[attr-defined]
            replies.append(await client.post("/chat", json={"message": "hi", **SESSION}))
    assert _answer(replies[0]) == _answer(replies[1])
    assert replies[0].status_code == status
    assert "secret detail" not in replies[0].text


class _Next:
    """The app behind the short path: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class _Service:
    async def chat(self, request: Any, **_: object) -> ChatResponse:
        return ChatResponse(response=f"echo {request.message}", job_id="j", actions_taken=[])


def _scope(method: str, path: str, **extra: Any) -> dict[str, Any]:
    state = State()
    state.chat = _Service()
    app = type("App", (), {"state": state})()
    return {"type": "http", "method": method, "path": path, "headers": [], "app": app, **extra}


@pytest.mark.parametrize(
    ("method", "path", "extra", "answered"),
    [
        ("POST", "/chat", {}, True),
        ("GET", "/chat", {}, False),
        ("POST", "/chat/", {}, False),
        ("POST", "/chatty", {}, False),
        ("POST", "/chat", {TRACED_SCOPE_KEY: object()}, False),
    ],
)
async def test_only_an_untraced_post_to_chat_takes_the_short_path(
    method: str, path: str, extra: dict[str, Any], answered: bool
) -> None:
    behind = _Next()
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"message": "hi", "twin_id": "t", '
                b'"session_id": "s"}'}  # fmt: skip

    async def send(message: Message) -> None:
        sent.append(message)

    await ChatShortPath(behind, handlers={})(_scope(method, path, **extra), receive, send)
    assert behind.paths == ([] if answered else [(method, path)])
    assert sent[0]["status"] == (200 if answered else 404)
    if answered:
        assert (
            sent[1]["body"]
            == b'{"response":"echo hi","job_id":"j","actions_taken":[],"status":"completed"}'
        )
