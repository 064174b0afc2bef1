"""``POST /chat``: one chat message in, one decision or approval outcome out.

A conversational outcome (nothing pending, a mismatch, an expired approval...)
is a chat reply: HTTP 200, ``status: "error"``, the original's wording. The
reply is serialised once, by pydantic, straight to JSON bytes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from phoenix_orchestrator.api import ChatRequest, ChatResponse, error_response
from phoenix_orchestrator.deps import ChatServiceDep
from phoenix_orchestrator.errors import ReplyError

router = APIRouter(tags=["chat"])


@router.post("/chat", response_model=ChatResponse, response_model_exclude_none=True)
async def chat(
    body: ChatRequest,
    service: ChatServiceDep,
    x_user_id: Annotated[str | None, Header(max_length=256)] = None,
) -> Response:
    actor = (x_user_id or "").strip() or body.twin_id
    try:
        reply = await service.chat(body, actor=actor)
    except ReplyError as err:
        if not err.conversational:
            raise
        reply = error_response(err.code, str(err), actions_taken=err.actions_taken)
    return Response(reply.model_dump_json(exclude_none=True), media_type="application/json")
