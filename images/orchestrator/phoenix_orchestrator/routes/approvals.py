"""The typed approvals API: the audit query, decisions by id, session grants.

- ``GET /v1/approvals?state=&twin_id=&session_id=&limit=&page_token=``: requests in a
  state (``pending`` by default; ``all``, ``decided`` or any status), newest first,
  paged, each with its audit trail;
- ``GET /v1/approvals/{request_id}``: one request and its trail;
- ``POST /v1/approvals/{request_id}/approve`` and ``.../deny``: decide (edit, scope,
  reason, the hash decided on); ``"stream": true`` streams the reply as ``/chat`` does;
- ``GET /v1/approvals/grants?session_id=`` and ``POST /v1/approvals/grants/{id}/revoke``.

A caller acting for one twin (the gateway) names it: another twin's request or
grant is then answered exactly like an unknown id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from phoenix_orchestrator.api import (
    ApprovalDecision,
    ApprovalQuery,
    ApprovalRecord,
    ChatResponse,
    GrantList,
    GrantRevocation,
    GrantView,
    PendingApprovals,
)
from phoenix_orchestrator.deps import ChatServiceDep, MetricsDep
from phoenix_orchestrator.routes.chat import identity
from phoenix_orchestrator.routes.streaming import NdjsonReply

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

RequestId = Annotated[str, Path(min_length=1, max_length=256)]
OptionalId = Annotated[str | None, Query(min_length=1, max_length=256)]


@router.get("")
async def list_approvals(
    chat_service: ChatServiceDep, query: Annotated[ApprovalQuery, Query()]
) -> PendingApprovals:
    return await chat_service.page(
        session_id=query.session_id,
        twin_id=query.twin_id,
        state=query.state,
        limit=query.limit,
        page_token=query.page_token,
    )


@router.get("/grants")
async def list_grants(
    chat_service: ChatServiceDep,
    session_id: Annotated[str, Query(min_length=1, max_length=256)],
    twin_id: OptionalId = None,
    include_revoked: bool = False,
) -> GrantList:
    grants = await chat_service.grants_of(session_id, twin_id, include_revoked=include_revoked)
    return GrantList(session_id=session_id, grants=grants)


@router.post("/grants/{grant_id}/revoke")
async def revoke_grant(
    grant_id: RequestId, body: GrantRevocation, request: Request, chat_service: ChatServiceDep
) -> GrantView:
    actor, _ = identity(request.headers, body.actor or body.twin_id or body.session_id)
    return await chat_service.revoke_grant(
        grant_id, session_id=body.session_id, twin_id=body.twin_id, actor=actor
    )


@router.get("/{request_id}")
async def get_approval(
    request_id: RequestId, chat_service: ChatServiceDep, twin_id: OptionalId = None
) -> ApprovalRecord:
    return await chat_service.record(request_id, twin_id)


async def _decide(
    request_id: str,
    body: ApprovalDecision,
    *,
    request: Request,
    chat_service: Any,
    metrics: Any,
    approve: bool,
) -> Any:
    actor, principal = identity(request.headers, body.actor or body.twin_id or "api")
    if principal is None and body.actor:
        actor = body.actor
    if body.stream:
        return NdjsonReply(
            lambda sink, control: chat_service.decide_by_id(
                request_id,
                body,
                approve=approve,
                actor=actor,
                principal=principal,
                sink=sink,
                control=control,
            ),
            metrics,
        )
    return await chat_service.decide_by_id(
        request_id, body, approve=approve, actor=actor, principal=principal
    )


@router.post("/{request_id}/approve", response_model=ChatResponse, response_model_exclude_none=True)
async def approve(
    request_id: RequestId,
    body: ApprovalDecision,
    request: Request,
    chat_service: ChatServiceDep,
    metrics: MetricsDep,
) -> Any:
    return await _decide(
        request_id, body, request=request, chat_service=chat_service, metrics=metrics, approve=True
    )


@router.post("/{request_id}/deny", response_model=ChatResponse, response_model_exclude_none=True)
async def deny(
    request_id: RequestId,
    body: ApprovalDecision,
    request: Request,
    chat_service: ChatServiceDep,
    metrics: MetricsDep,
) -> Any:
    return await _decide(
        request_id, body, request=request, chat_service=chat_service, metrics=metrics, approve=False
    )
