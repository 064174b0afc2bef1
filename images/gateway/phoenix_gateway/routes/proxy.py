"""HTTP proxy to the orchestrator: ``/api/chat`` and the approvals API.

Upstream status codes and bodies pass through unchanged (422 stays 422, 503
stays 503); an unreachable orchestrator is 502. The caller's twin is always the
authenticated one: a ``twin_id`` naming another twin is 403, and the twin is
sent upstream in ``X-User-ID`` and in the request. Who the caller is (the API
key id, the JWT subject) goes upstream in ``X-Phoenix-Principal``: the
orchestrator records it as the decider, whatever ``actor`` a body names.

``POST /api/chat`` with ``"stream": true`` answers ``text/event-stream``: a
``message_chunk`` event per piece, then one ``complete_message`` event, each
holding the frame the WebSocket would send; a client that disconnects cancels it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response, StreamingResponse
from opentelemetry import propagate
from pydantic import ValidationError

from phoenix_gateway.auth import Principal
from phoenix_gateway.chat import PRINCIPAL_HEADER, ChatError, Relay
from phoenix_gateway.contracts import ChatFrame, MessageChunk
from phoenix_gateway.deps import OrchestratorDep, PrincipalDep, SettingsDep, acting_twin
from phoenix_gateway.upstream import UpstreamClient, UpstreamError

router = APIRouter(prefix="/api", tags=["orchestrator"])
STREAM_QUEUE = 64  # chunks held for a slow SSE client before the upstream read waits

PASSED_HEADERS = ("content-type", "retry-after")


async def _forward(
    client: UpstreamClient,
    method: str,
    path: str,
    *,
    twin_id: str,
    principal: Principal,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Response:
    headers = {"x-user-id": twin_id, PRINCIPAL_HEADER: principal.subject}
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
    except UnicodeDecodeError:  # json.loads decodes bytes first (found by tests/fuzz)
        raise HTTPException(status_code=422, detail="body is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=422, detail="body must be a JSON object")
    return body


@router.post("/chat")
async def chat(
    request: Request, principal: PrincipalDep, client: OrchestratorDep, settings: SettingsDep
) -> Response:
    """``POST /chat`` with the original's ChatRequest; ``twin_id`` defaults to the caller's."""
    body = await _json_object(request)
    body["twin_id"] = twin = acting_twin(principal, body.get("twin_id"))
    if body.get("stream") is True:
        return _event_stream(body, twin, principal, client, settings.upstream_timeout_seconds)
    return await _forward(client, "POST", "/chat", twin_id=twin, principal=principal, body=body)


def _event_stream(
    body: dict[str, Any], twin: str, principal: Principal, client: UpstreamClient, idle: float
) -> StreamingResponse:
    try:
        frame = ChatFrame.model_validate(
            {"session_id": body.get("session_id"), "user_id": twin,
             "message": body.get("message"), "namespace": body.get("namespace")}
        )  # fmt: skip
    except ValidationError as err:
        problem = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise HTTPException(status_code=422, detail=problem) from None
    relay = Relay(client, principal=principal.subject, stream_idle_seconds=idle)
    return StreamingResponse(
        _events(relay, frame),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _events(relay: Relay, frame: ChatFrame) -> AsyncIterator[bytes]:
    """SSE events for one streamed reply: chunks as they arrive, then the reply.

    The relay runs in a task feeding a small queue (a slow client holds back the
    upstream read rather than growing a buffer); when the client disconnects,
    Starlette closes this generator and the ``finally`` cancels the task, which
    closes the upstream connection and so stops the orchestrator's planning.
    """
    chunks: asyncio.Queue[MessageChunk] = asyncio.Queue(maxsize=STREAM_QUEUE)
    answering = asyncio.create_task(relay.answer(frame, chunks.put))
    try:
        while True:
            getting = asyncio.ensure_future(chunks.get())
            await asyncio.wait({getting, answering}, return_when=asyncio.FIRST_COMPLETED)
            if getting.done():
                yield _sse("message_chunk", getting.result().model_dump_json())
                continue
            getting.cancel()  # the answer is in; a cancelled get leaves its item queued
            await asyncio.gather(getting, return_exceptions=True)
            while not chunks.empty():
                yield _sse("message_chunk", chunks.get_nowait().model_dump_json())
            break
        try:
            reply = answering.result()
        except ChatError as err:
            yield _sse("status_update", err.frame())
            return
        yield _sse("complete_message", reply.to_frame())
    finally:
        if not answering.done():
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)


@router.get("/approvals")
async def list_approvals(
    request: Request, principal: PrincipalDep, client: OrchestratorDep
) -> Response:
    """The audit query (``?state=&session_id=&limit=&page_token=``), for the caller's twin."""
    params = dict(request.query_params)
    params.pop("token", None)
    params["twin_id"] = twin = acting_twin(principal, params.get("twin_id"))
    return await _forward(
        client, "GET", "/v1/approvals", twin_id=twin, principal=principal, params=params
    )


@router.get("/approvals/grants")
async def list_grants(
    request: Request, principal: PrincipalDep, client: OrchestratorDep
) -> Response:
    """The session's grants (``?session_id=``), for the caller's twin only."""
    params = dict(request.query_params)
    params.pop("token", None)
    params["twin_id"] = twin = acting_twin(principal, params.get("twin_id"))
    return await _forward(
        client, "GET", "/v1/approvals/grants", twin_id=twin, principal=principal, params=params
    )


@router.post("/approvals/grants/{grant_id}/revoke")
async def revoke_grant(
    grant_id: str, request: Request, principal: PrincipalDep, client: OrchestratorDep
) -> Response:
    """Revoke a session grant: body ``{"session_id"}``."""
    body = await _json_object(request)
    body["twin_id"] = twin = acting_twin(principal, body.get("twin_id"))
    return await _forward(
        client, "POST", f"/v1/approvals/grants/{quote(grant_id, safe='')}/revoke",
        twin_id=twin, principal=principal, body=body,
    )  # fmt: skip


@router.get("/approvals/{request_id}")
async def get_approval(
    request_id: str, request: Request, principal: PrincipalDep, client: OrchestratorDep
) -> Response:
    """One request of the caller's twin, with its audit trail."""
    twin = acting_twin(principal, request.query_params.get("twin_id"))
    return await _forward(
        client, "GET", f"/v1/approvals/{quote(request_id, safe='')}", twin_id=twin,
        principal=principal, params={"twin_id": twin},
    )  # fmt: skip


@router.post("/approvals/{request_id}/{decision}")
async def decide_approval(
    request_id: str,
    decision: str,
    request: Request,
    principal: PrincipalDep,
    client: OrchestratorDep,
) -> Response:
    """Approve or deny a pending request: body ``{"session_id"}`` plus, to approve,
    ``arguments`` (edited), ``scope`` (``once``/``session``), to deny, ``reason``, and
    optionally the ``arguments_hash`` decided on.

    The caller's twin is added to the body, so the orchestrator answers a request
    of any other twin exactly like an unknown id (404).
    """
    if decision not in ("approve", "deny"):
        raise HTTPException(status_code=404, detail="decision must be approve or deny")
    body = await _json_object(request)
    body["twin_id"] = twin = acting_twin(principal, body.get("twin_id"))
    return await _forward(
        client,
        "POST",
        f"/v1/approvals/{quote(request_id, safe='')}/{decision}",
        twin_id=twin,
        principal=principal,
        body=body,
    )


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()
