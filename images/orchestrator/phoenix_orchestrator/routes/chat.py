"""``POST /chat``: one chat message in, one decision or approval outcome out.

A conversational outcome (nothing pending, a mismatch, an expired approval...)
is a chat reply: HTTP 200, ``status: "error"``, the original's wording.

With ``"stream": true`` the reply is ``application/x-ndjson`` (``streaming``):
the answer's text as it is planned, then the whole reply.

The caller's identity: ``X-Phoenix-Principal`` (set by the gateway: the API key
id or JWT subject it authenticated) is who decided; without it, ``X-User-ID``
(the original gateway's header), else the twin. The orchestrator is reachable
only from its gateway (the twin's NetworkPolicy), which sets both headers.

This is the hot path of every chat message, so it is a plain Starlette route:
FastAPI's dependency resolution and response validation cost about four times
what the endpoint itself does (bench/chat_profile.py). The body is validated by
pydantic straight from the JSON bytes, errors become the same 422 as any other
route's, and the reply is serialised once. ``openapi_operation`` keeps the
route in the OpenAPI document.

An untraced ``POST /chat`` does not even reach the route: ``ChatShortPath``, a
plain ASGI middleware inside the request metrics, answers it with the same
``chat`` and the app's own exception handlers. Starlette's exception
middleware, router and route wrapper cost 60-70 us of the
orchestrator's 440 us of CPU per message (the process alone, sent the gateway's
requests). A traced request takes the route, so that its server span is named
after it (``http.route``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import Headers, State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from phoenix_common.errors import PhoenixError
from phoenix_orchestrator.api import ChatRequest, ChatResponse, error_response
from phoenix_orchestrator.chat import ChatService
from phoenix_orchestrator.errors import ReplyError
from phoenix_orchestrator.routes.streaming import NdjsonReply

ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]
# Set by FastAPI's native telemetry on the requests it traces (should it be renamed, the
# traced span loses its route name, and test_chat_short_path fails).
TRACED_SCOPE_KEY = "fastapi.telemetry"

MAX_ACTOR_CHARS = 256
PRINCIPAL_HEADER = "x-phoenix-principal"


def identity(headers: Headers, twin_id: str) -> tuple[str, str | None]:
    """(actor, principal): who the audit names, and the authenticated principal if any."""
    principal = (headers.get(PRINCIPAL_HEADER) or "").strip()[:MAX_ACTOR_CHARS] or None
    actor = principal or (headers.get("x-user-id") or "").strip()[:MAX_ACTOR_CHARS] or twin_id
    return actor, principal


async def answer(state: State, body: bytes, headers: Headers) -> ChatResponse | NdjsonReply:
    """The answer to one ``POST /chat`` body: the reply, or the stream that will send it.

    A bad body raises ``RequestValidationError``, an outcome that is not conversational
    its ``PhoenixError``: the app's exception handlers answer both.
    """
    try:
        request = ChatRequest.model_validate_json(body)
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None
    actor, principal = identity(headers, request.twin_id)
    service: ChatService = state.chat
    if request.stream:
        return NdjsonReply(
            lambda sink, control: service.chat(
                request, actor=actor, principal=principal, sink=sink, control=control
            ),
            state.metrics,
        )
    try:
        return await service.chat(request, actor=actor, principal=principal)
    except ReplyError as err:
        if not err.conversational:
            raise
        return error_response(err.code, str(err), actions_taken=err.actions_taken)


def _json(reply: ChatResponse) -> bytes:
    return reply.model_dump_json(exclude_none=True).encode()


async def chat(request: Request) -> Response:
    reply = await answer(request.app.state, await request.body(), request.headers)
    if isinstance(reply, NdjsonReply):
        return reply
    return Response(_json(reply), media_type="application/json")


class ChatShortPath:
    """Answers an untraced ``POST /chat`` itself (see the module doc); passes on the rest.

    ``handlers`` is the app's ``exception_handlers``, read when an error happens; an
    error none of them takes propagates as from the route (to the 500 handler).
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, ExceptionHandler]) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/chat"
            or scope["method"] != "POST"
            or TRACED_SCOPE_KEY in scope
        ):
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = chat  # as the route sets it: the request metrics' route template
        request = Request(scope, receive, send)
        try:
            response = await chat(request)
        except (RequestValidationError, PhoenixError) as err:
            handler = self._handler(err)
            if handler is None:
                raise
            handled = handler(request, err)
            response = await handled if inspect.isawaitable(handled) else handled
        await response(scope, receive, send)

    def _handler(self, err: Exception) -> ExceptionHandler | None:
        for cls in type(err).__mro__:  # the most specific handler, as Starlette looks it up
            if cls in self.handlers:
                return self.handlers[cls]
        return None


def openapi_operation() -> dict[str, Any]:
    """The route's OpenAPI operation (FastAPI cannot derive it from a plain route)."""
    return {
        "tags": ["chat"],
        "summary": "Chat",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
        },
        "responses": {
            "200": {
                "description": "A reply, an approval request, or a conversational outcome",
                "content": {"application/json": {"schema": ChatResponse.model_json_schema()}},
            },
            "422": {"description": "Invalid body (names the field)"},
            "x-streaming": {
                "description": 'With "stream": true: application/x-ndjson, message_chunk '
                "lines then one complete line holding the reply"
            },
        },
    }
