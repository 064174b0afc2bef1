"""``/ws/chat/{user_id}``: the UI's chat socket.

The credential is checked before any frame is read; a missing or invalid one,
or one for another twin than ``user_id``, closes the socket with 1008 (policy
violation). Frames are then handled one at a time, as in the original; a bad
frame gets an error ``status_update`` and the socket stays open.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from opentelemetry import context as otel_context
from opentelemetry import trace

from phoenix_gateway.auth import Authenticator, Principal, find_credential, same_origin
from phoenix_gateway.chat import ChatError, Relay, parse_frame
from phoenix_gateway.contracts import StatusUpdate
from phoenix_gateway.observability import AUTH_REFUSED, WS_CONNECTIONS, WS_FRAMES, span_attributes

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("phoenix_gateway.chat")
router = APIRouter(tags=["chat"])
BINARY_FRAME_ERROR = StatusUpdate(
    status="error", details="Invalid JSON payload: binary frames are not supported"
).model_dump()


async def _authenticate(websocket: WebSocket, user_id: str) -> Principal | None:
    authenticator: Authenticator = websocket.app.state.authenticator
    credential = find_credential(websocket.headers, websocket.query_params, websocket.cookies)
    principal = await authenticator.authenticate(credential)
    if principal is None:
        AUTH_REFUSED.labels("ws", "missing" if credential is None else "invalid").inc()
        return None
    if principal.source == "cookie" and not same_origin(websocket.headers):
        AUTH_REFUSED.labels("ws", "cross_origin").inc()
        return None
    if principal.twin_id != user_id:
        AUTH_REFUSED.labels("ws", "twin_mismatch").inc()
        return None
    return principal


@router.websocket("/ws/chat/{user_id}")
async def chat_socket(websocket: WebSocket, user_id: str) -> None:
    principal = await _authenticate(websocket, user_id)
    # Accept, then close: a browser sees close code 1008 only on an accepted socket.
    await websocket.accept()
    if principal is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="unauthorized")
        return
    relay = Relay(websocket.app.state.orchestrator, websocket.app.state.settings.default_namespace)
    WS_CONNECTIONS.inc()
    try:
        # A JWT or session expires; the socket it opened closes then (1008).
        async with asyncio.timeout(principal.seconds_left()) as lifetime:
            await _serve(websocket, relay, user_id)
    except WebSocketDisconnect:
        return
    except TimeoutError:
        if not lifetime.expired():
            raise
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="credential expired")
    finally:
        WS_CONNECTIONS.dec()


async def _serve(websocket: WebSocket, relay: Relay, user_id: str) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            WS_FRAMES.labels("binary").inc()
            await websocket.send_json(BINARY_FRAME_ERROR)
            continue
        await _answer(websocket, relay, text, user_id)


async def _answer(websocket: WebSocket, relay: Relay, text: str, user_id: str) -> None:
    # Each frame is its own trace (a fresh root, not a child of the long-lived socket).
    with tracer.start_as_current_span(
        "chat frame",
        context=otel_context.Context(),
        kind=trace.SpanKind.SERVER,
        attributes=span_attributes(twin=user_id, transport="websocket"),
    ) as span:
        try:
            frame = parse_frame(text, user_id)
            span.set_attributes(span_attributes(session=frame.session_id))
            await websocket.send_json(StatusUpdate(status="busy").model_dump())
            reply = await relay.send(relay.request_for(frame))
        except ChatError as err:
            WS_FRAMES.labels(err.outcome).inc()
            span.set_attribute("phoenix.outcome", err.outcome)
            await websocket.send_json(err.frame())
            return
        WS_FRAMES.labels("complete").inc()
        await websocket.send_json(reply.to_frame())
