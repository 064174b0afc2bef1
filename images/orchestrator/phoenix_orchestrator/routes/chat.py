"""``POST /chat``: one chat message in, one decision or approval outcome out.

A conversational outcome (nothing pending, a mismatch, an expired approval...)
is a chat reply: HTTP 200, ``status: "error"``, the original's wording.

This is the hot path of every chat message, so it is a plain Starlette route:
FastAPI's dependency resolution and response validation cost about four times
what the endpoint itself does (bench/chat_profile.py). The body is validated by
pydantic straight from the JSON bytes, errors become the same 422 as any other
route's, and the reply is serialised once. ``CHAT_OPENAPI`` keeps the route in
the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from phoenix_orchestrator.api import ChatRequest, ChatResponse, error_response
from phoenix_orchestrator.chat import ChatService
from phoenix_orchestrator.errors import ReplyError

MAX_ACTOR_CHARS = 256


async def chat(request: Request) -> Response:
    try:
        body = ChatRequest.model_validate_json(await request.body())
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None
    actor = (request.headers.get("x-user-id") or "").strip()[:MAX_ACTOR_CHARS] or body.twin_id
    service: ChatService = request.app.state.chat
    try:
        reply = await service.chat(body, actor=actor)
    except ReplyError as err:
        if not err.conversational:
            raise
        reply = error_response(err.code, str(err), actions_taken=err.actions_taken)
    return Response(reply.model_dump_json(exclude_none=True), media_type="application/json")


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
        },
    }
