"""``POST /chat``: one chat message in, one decision or approval outcome out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from phoenix_orchestrator.api import ChatRequest, ChatResponse
from phoenix_orchestrator.deps import ChatServiceDep

router = APIRouter(tags=["chat"])


@router.post("/chat", response_model_exclude_none=True)
async def chat(
    body: ChatRequest,
    chat_service: ChatServiceDep,
    x_user_id: Annotated[str | None, Header(max_length=256)] = None,
) -> ChatResponse:
    actor = (x_user_id or "").strip() or body.twin_id
    return await chat_service.chat(body, actor=actor)
