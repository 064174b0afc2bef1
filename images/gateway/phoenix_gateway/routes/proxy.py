"""HTTP proxy to the orchestrator: ``/api/chat`` and the approvals API.

Upstream status codes and bodies pass through unchanged (422 stays 422, 503
stays 503); an unreachable orchestrator is 502. The caller's twin is always the
authenticated one: a ``twin_id`` naming another twin is 403, and the twin is
sent upstream in ``X-User-ID`` and in the request.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from opentelemetry import propagate

from phoenix_gateway.deps import OrchestratorDep, PrincipalDep, acting_twin
from phoenix_gateway.upstream import UpstreamClient, UpstreamError

router = APIRouter(prefix="/api", tags=["orchestrator"])

PASSED_HEADERS = ("content-type", "retry-after")


async def _forward(
    client: UpstreamClient,
    method: str,
    path: str,
    *,
    twin_id: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Response:
    headers = {"x-user-id": twin_id}
    propagate.inject(headers)  # this request's server span, when tracing is on
    content = b""
    if body is not None:
        content = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    target = f"{path}?{urlencode(params)}" if params else path
    try:
        upstream = await client.request(method, target, body=content, headers=headers.items())
    except (UpstreamError, ValueError):
        raise HTTPException(
            status_code=status.HTTP_502_BAD_GATEWAY, detail="orchestrator unavailable"
        ) from None
    passed = {k: v for k, v in upstream.headers if k in PASSED_HEADERS}
    return Response(content=upstream.body, status_code=upstream.status, headers=passed)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as err:
        raise HTTPException(status_code=422, detail=f"body is not JSON: {err.msg}") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=422, detail="body must be a JSON object")
    return body


@router.post("/chat")
async def chat(request: Request, principal: PrincipalDep, client: OrchestratorDep) -> Response:
    """``POST /chat`` with the original's ChatRequest; ``twin_id`` defaults to the caller's."""
    body = await _json_object(request)
    body["twin_id"] = twin = acting_twin(principal, body.get("twin_id"))
    return await _forward(client, "POST", "/chat", twin_id=twin, body=body)


@router.get("/approvals")
async def list_approvals(
    request: Request, principal: PrincipalDep, client: OrchestratorDep
) -> Response:
    """Pending approvals of a session (``?session_id=``), for the caller's twin only."""
    params = dict(request.query_params)
    params.pop("token", None)
    params["twin_id"] = twin = acting_twin(principal, params.get("twin_id"))
    return await _forward(client, "GET", "/v1/approvals", twin_id=twin, params=params)


@router.post("/approvals/{request_id}/{decision}")
async def decide_approval(
    request_id: str,
    decision: str,
    request: Request,
    principal: PrincipalDep,
    client: OrchestratorDep,
) -> Response:
    """Approve or deny a pending request: body ``{"session_id", "actor"}``.

    The caller's twin is added to the body, so the orchestrator answers a request
    of any other twin exactly like an unknown id (404).
    """
    if decision not in ("approve", "deny"):
        raise HTTPException(status_code=404, detail="decision must be approve or deny")
    body = await _json_object(request)
    body["twin_id"] = twin = acting_twin(principal, body.get("twin_id"))
    body.setdefault("actor", twin)
    return await _forward(
        client,
        "POST",
        f"/v1/approvals/{quote(request_id, safe='')}/{decision}",
        twin_id=twin,
        body=body,
    )
