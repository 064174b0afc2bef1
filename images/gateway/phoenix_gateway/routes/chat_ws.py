"""``/ws/chat/{user_id}``: the UI's chat socket.

Who may open it is settled before any frame is read:

- no credential at all (the original's UI against an authenticating gateway) is
  refused in the handshake (HTTP 403): a browser then counts a failed attempt,
  so the original UI stops after its five retries instead of reconnecting every
  3 s forever, which it does when an accepted socket closes;
- a credential that is invalid, expired or for another twin than ``user_id``:
  the socket is accepted and closed with 1008 "unauthorized", so a client
  learns that it should sign in again;
- the local no-auth mode (``access``) serves a caller without a credential,
  from an allowed origin, as the twin in the path.

Frames are then handled one at a time, as in the original: exactly one reply
per frame, a ``complete_message`` or an error ``status_update``. A client that
wants to know when the gateway starts working on a frame asks for a ``busy``
status first with ``?busy=true``; one that wants replies as they are made asks
with ``?stream=true`` and gets ``message_chunk`` frames (the original's shape,
which its gateway defined but never sent) before each ``complete_message``, the
same ``id`` on all of them. Nothing else is sent that a client did not ask for,
so the original UI still sees exactly one frame per message.

While a streamed reply is being made the socket is still read: a client that
closes it cancels the reply (its upstream connection is closed, and the
orchestrator stops planning; a tool run already started finishes), and frames
that arrive meanwhile are answered in order afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import AbstractContextManager, nullcontext

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from opentelemetry import context as otel_context
from opentelemetry import trace

from phoenix_gateway.access import AccessPolicy, same_origin
from phoenix_gateway.auth import Authenticator, Principal, find_credential
from phoenix_gateway.chat import ChatError, Relay, parse_frame
from phoenix_gateway.contracts import MessageChunk, StatusUpdate
from phoenix_gateway.metrics import AUTH_REFUSED, WS_CONNECTIONS, WS_FRAMES
from phoenix_gateway.observability import span_attributes

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("phoenix_gateway.chat")
router = APIRouter(tags=["chat"])
BINARY_FRAME_ERROR = StatusUpdate(
    status="error", details="Invalid JSON payload: binary frames are not supported"
).model_dump_json()
BUSY = StatusUpdate(status="busy").model_dump_json()
FRAMES_COMPLETE = WS_FRAMES.labels("complete")
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


class Refused(Exception):
    """The socket is refused; ``in_handshake`` says whether before or after accepting it."""

    def __init__(self, reason: str, *, in_handshake: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.in_handshake = in_handshake


async def _authenticate(websocket: WebSocket, user_id: str) -> Principal:
    credential = find_credential(websocket.headers, websocket.query_params, websocket.cookies)
    if credential is None:
        policy: AccessPolicy = websocket.app.state.access
        client = websocket.client.host if websocket.client else None
        refusal = policy.anonymous_refusal(websocket.headers, client)
        if refusal is not None:
            raise Refused(refusal, in_handshake=True)
        return Principal(user_id, "local", subject="local:anonymous")
    authenticator: Authenticator = websocket.app.state.authenticator
    principal = await authenticator.authenticate(credential)
    if principal is None:
        raise Refused("invalid", in_handshake=False)
    if principal.source == "cookie" and not same_origin(websocket.headers):
        raise Refused("cross_origin", in_handshake=False)
    if principal.twin_id != user_id:
        raise Refused("twin_mismatch", in_handshake=False)
    return principal


@router.websocket("/ws/chat/{user_id}")
async def chat_socket(websocket: WebSocket, user_id: str) -> None:
    try:
        principal = await _authenticate(websocket, user_id)
    except Refused as refused:
        AUTH_REFUSED.labels("ws", refused.reason).inc()
        if not refused.in_handshake:
            # Accept, then close: a browser sees close code 1008 only on an accepted socket.
            await websocket.accept()
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="unauthorized")
        return
    await websocket.accept()
    settings = websocket.app.state.settings
    relay = Relay(
        websocket.app.state.orchestrator,
        settings.default_namespace,
        principal=principal.subject,
        stream_idle_seconds=settings.upstream_timeout_seconds,
    )
    busy = websocket.query_params.get("busy", "").lower() in TRUE_VALUES
    stream = websocket.query_params.get("stream", "").lower() in TRUE_VALUES
    WS_CONNECTIONS.inc()
    try:
        # A JWT or session expires; the socket it opened closes then (1008).
        async with asyncio.timeout(principal.seconds_left()) as lifetime:
            await _serve(websocket, relay, user_id, busy=busy, stream=stream)
    except WebSocketDisconnect:
        return
    except TimeoutError:
        if not lifetime.expired():
            raise
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="credential expired")
    finally:
        WS_CONNECTIONS.dec()


async def _serve(
    websocket: WebSocket, relay: Relay, user_id: str, *, busy: bool, stream: bool
) -> None:
    backlog: deque[str | None] = deque()  # frames received while a reply streamed
    while True:
        if backlog:
            text = backlog.popleft()
        else:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
        if text is None:
            WS_FRAMES.labels("binary").inc()
            await websocket.send_text(BINARY_FRAME_ERROR)
            continue
        if not stream:
            await _answer(websocket, relay, text, user_id, busy=busy, stream=False)
        elif not await _answer_watching(
            websocket, relay, text, user_id, busy=busy, backlog=backlog
        ):
            return


async def _answer_watching(
    websocket: WebSocket,
    relay: Relay,
    text: str,
    user_id: str,
    *,
    busy: bool,
    backlog: deque[str | None],
) -> bool:
    """Answer one frame, streamed, while reading the socket; False if the client left."""
    answering = asyncio.create_task(
        _answer(websocket, relay, text, user_id, busy=busy, stream=True)
    )
    while not answering.done():
        receiving = asyncio.ensure_future(websocket.receive())
        await asyncio.wait({answering, receiving}, return_when=asyncio.FIRST_COMPLETED)
        if not receiving.done():
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            continue
        message = receiving.result()
        if message["type"] == "websocket.disconnect":
            answering.cancel()  # closes the upstream stream: the orchestrator stops planning
            await asyncio.gather(answering, return_exceptions=True)
            WS_FRAMES.labels("cancelled").inc()
            return False
        backlog.append(message.get("text"))
    await answering
    return True


def _frame_span(user_id: str) -> AbstractContextManager[trace.Span]:
    """The frame's span: its own trace (a fresh root, not a child of the long-lived socket).

    None when tracing is off (no SDK provider installed, see phoenix_common.telemetry):
    a no-op span still costs a context switch in and out per frame.
    """
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return nullcontext(trace.INVALID_SPAN)
    return tracer.start_as_current_span(
        "chat frame",
        context=otel_context.Context(),
        kind=trace.SpanKind.SERVER,
        attributes=span_attributes(twin=user_id, transport="websocket"),
    )


async def _answer(
    websocket: WebSocket, relay: Relay, text: str, user_id: str, *, busy: bool, stream: bool
) -> None:
    with _frame_span(user_id) as span:
        try:
            frame = parse_frame(text, user_id)
            if span.is_recording():
                span.set_attributes(span_attributes(session=frame.session_id))
            if busy:
                await websocket.send_text(BUSY)

            async def send_chunk(chunk: MessageChunk) -> None:
                await websocket.send_text(chunk.model_dump_json())

            reply = await relay.answer(frame, send_chunk if stream else None)
        except ChatError as err:
            WS_FRAMES.labels(err.outcome).inc()
            span.set_attribute("phoenix.outcome", err.outcome)
            await websocket.send_text(err.frame())
            return
        FRAMES_COMPLETE.inc()
        await websocket.send_text(reply.to_frame())
