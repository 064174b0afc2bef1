"""The typed approvals API: list pending requests, approve or deny one by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from phoenix_orchestrator.api import ApprovalDecision, ChatResponse, PendingApprovals
from phoenix_orchestrator.deps import ChatServiceDep

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

RequestId = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("")
async def list_pending(
    chat_service: ChatServiceDep,
    session_id: Annotated[str, Query(min_length=1, max_length=256)],
    twin_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> PendingApprovals:
    pending = await chat_service.list_pending(session_id, twin_id)
    return PendingApprovals(session_id=session_id, pending=pending)


@router.post("/{request_id}/approve", response_model_exclude_none=True)
async def approve(
    request_id: RequestId, body: ApprovalDecision, chat_service: ChatServiceDep
) -> ChatResponse:
    return await chat_service.decide_by_id(
        request_id,
        session_id=body.session_id,
        twin_id=body.twin_id,
        approve=True,
        actor=body.actor,
    )


@router.post("/{request_id}/deny", response_model_exclude_none=True)
async def deny(
    request_id: RequestId, body: ApprovalDecision, chat_service: ChatServiceDep
) -> ChatResponse:
    return await chat_service.decide_by_id(
        request_id,
        session_id=body.session_id,
        twin_id=body.twin_id,
        approve=False,
        actor=body.actor,
    )
