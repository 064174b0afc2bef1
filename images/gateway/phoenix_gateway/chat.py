"""One chat frame, from the UI's JSON to the reply frame: parse, check, forward, wrap.

Routes (WebSocket and HTTP) call this module; it knows nothing about sockets.
Error texts are the original's, so its UI shows them unchanged.

A frame is a chat message (the original's) or a decision on an approval
request by id (``approval_decision``: approve, edit, deny with a reason,
approve for the session), forwarded to the orchestrator's approvals API with
the authenticated principal in ``X-Phoenix-Principal``. Either may be answered
whole (``send``/``decide``) or streamed (``stream=True``): ``message_chunk``
frames as the orchestrator's NDJSON lines arrive, then the ``complete_message``
with the same id. Cancelling a streamed call closes its upstream connection,
which stops the orchestrator's planning.

Each frame is parsed and each reply read by pydantic straight from/to JSON
bytes; the request goes out on a kept-alive connection (``upstream``). With
tracing on, the call is a client span whose context travels in ``traceparent``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from opentelemetry import propagate, trace
from pydantic import ValidationError

from phoenix_gateway.contracts import (
    INBOUND_FRAME,
    STREAM_LINE,
    ChatFrame,
    CompleteMessage,
    DecisionFrame,
    MessageChunk,
    OrchestratorDecision,
    OrchestratorRequest,
    OrchestratorResponse,
    OrchestratorStreamRequest,
    StatusUpdate,
    StreamChunk,
)
from phoenix_gateway.metrics import CHAT_LATENCY
from phoenix_gateway.upstream import UpstreamClient, UpstreamError, UpstreamResponse

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("phoenix_gateway.chat")

MAX_ERROR_BODY = 500
MAX_STREAM_LINE = 4 * 1024 * 1024
MAX_WHOLE_REPLY = 16 * 1024 * 1024  # the upstream client's own body limit
NDJSON = "application/x-ndjson"
USER_MISMATCH = "User ID mismatch between path and request payload."
PRINCIPAL_HEADER = "x-phoenix-principal"
OnChunk = Callable[[MessageChunk], Awaitable[None]]


class ChatError(Exception):
    """A frame that gets an error ``status_update`` instead of a reply."""

    def __init__(self, details: str, outcome: str) -> None:
        super().__init__(details)
        self.details = details
        self.outcome = outcome

    def frame(self) -> str:
        return StatusUpdate(status="error", details=self.details).model_dump_json()


def parse_frame(text: str, path_user_id: str) -> ChatFrame | DecisionFrame:
    """The frame, or ChatError with the original's message for bad JSON or a user id mismatch."""
    try:
        frame = INBOUND_FRAME.validate_json(text)
    except ValidationError as err:
        problem = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'frame'}: {e['msg']}"
            for e in err.errors(include_url=False, include_input=False)
        )
        raise ChatError(f"Invalid JSON payload: {problem}", "invalid_json") from None
    if frame.user_id != path_user_id:
        raise ChatError(USER_MISMATCH, "user_mismatch")
    return frame


@dataclass(frozen=True)
class Relay:
    """Forwards chat requests to ``POST {ORCHESTRATOR_URL}/chat`` and decisions to its
    approvals API, as the authenticated ``principal`` (the audit's "who")."""

    client: UpstreamClient
    default_namespace: str | None = None
    principal: str | None = None
    stream_idle_seconds: float = 60.0

    def _headers(self, twin_id: str, *, traced: bool = False) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-user-id": twin_id}
        if self.principal is not None:
            headers[PRINCIPAL_HEADER] = self.principal
        if traced and trace.get_current_span().is_recording():
            propagate.inject(headers)
        return headers

    def decision_for(self, frame: DecisionFrame, *, stream: bool) -> tuple[str, bytes]:
        """The approvals API path and body for a decision frame."""
        body = OrchestratorDecision(
            session_id=frame.session_id,
            twin_id=frame.user_id,
            arguments=frame.arguments,
            scope=frame.scope if frame.decision == "approve" else None,
            reason=frame.reason,
            arguments_hash=frame.arguments_hash,
            stream=True if stream else None,
        )
        path = f"/v1/approvals/{quote(frame.request_id, safe='')}/{frame.decision}"
        return path, body.model_dump_json(exclude_none=True).encode()

    async def answer(
        self, frame: ChatFrame | DecisionFrame, on_chunk: OnChunk | None = None
    ) -> CompleteMessage:
        """The reply to one frame; streamed through ``on_chunk`` when it is given."""
        if isinstance(frame, DecisionFrame):
            path, body = self.decision_for(frame, stream=on_chunk is not None)
            twin = frame.user_id
        else:
            request = self.request_for(frame)
            twin = request.twin_id
            if on_chunk is None:
                return await self.send(request)
            path = "/chat"
            body = OrchestratorStreamRequest(**request.model_dump()).model_dump_json().encode()
        if on_chunk is None:
            return await self._call(path, body, twin)
        return await self._stream(path, body, twin, on_chunk)

    async def _call(self, path: str, body: bytes, twin: str) -> CompleteMessage:
        started = time.perf_counter()
        try:
            reply = await self.client.request(
                "POST", path, body=body, headers=self._headers(twin, traced=True).items()
            )
        except (UpstreamError, ValueError) as err:
            raise _unreachable(err) from None
        return _complete(reply, time.perf_counter() - started, str(uuid.uuid4()))

    async def _stream(
        self, path: str, body: bytes, twin: str, on_chunk: OnChunk
    ) -> CompleteMessage:
        """Stream one call: chunks as they come, then the reply (same id)."""
        message_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            upstream = await self.client.stream(
                "POST", path, body=body, headers=self._headers(twin, traced=True).items()
            )
        except (UpstreamError, ValueError) as err:
            raise _unreachable(err) from None
        try:
            if not upstream.is_success:
                text = await upstream.read(MAX_ERROR_BODY)
                raw = UpstreamResponse(upstream.status, upstream.headers, text)
                return _complete(raw, time.perf_counter() - started, message_id)
            media = dict(upstream.headers).get("content-type", "").partition(";")[0].strip()
            if media != NDJSON:
                # An orchestrator that does not stream (one not yet upgraded, in a rolling
                # update) answers whole: that is the reply, without chunks.
                text = await upstream.read(MAX_WHOLE_REPLY)
                raw = UpstreamResponse(upstream.status, upstream.headers, text)
                return _complete(raw, time.perf_counter() - started, message_id)
            async for line in self._lines(upstream.chunks()):
                item = STREAM_LINE.validate_json(line)  # ValidationError is a ValueError
                if isinstance(item, StreamChunk):
                    await on_chunk(MessageChunk(id=message_id, content_chunk=item.content_chunk))
                    continue
                raw = UpstreamResponse(item.status_code, (), json.dumps(item.reply).encode())
                return _complete(raw, time.perf_counter() - started, message_id)
        except (UpstreamError, ValueError, TimeoutError) as err:
            raise ChatError(
                f"Orchestrator error: the streamed reply broke off: {err}", "orchestrator_stream"
            ) from None
        finally:
            upstream.close()  # done, failed or cancelled: the orchestrator stops planning
        raise ChatError(
            "Orchestrator error: the streamed reply ended without a result", "orchestrator_stream"
        )

    async def _lines(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Complete lines of an NDJSON body; silence longer than the idle limit is an error."""
        buffer = b""
        iterator = chunks.__aiter__()
        while True:
            try:
                async with asyncio.timeout(self.stream_idle_seconds):
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            buffer += chunk
            if len(buffer) > MAX_STREAM_LINE:
                raise ValueError("a streamed line is too long")
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield line
        if buffer.strip():
            yield buffer

    def request_for(self, frame: ChatFrame) -> OrchestratorRequest:
        return OrchestratorRequest(
            message=frame.message,
            twin_id=frame.user_id,
            session_id=frame.session_id,
            namespace=frame.namespace or self.default_namespace,
        )

    async def send(self, request: OrchestratorRequest) -> CompleteMessage:
        """The orchestrator's reply as a ``complete_message``, or ChatError saying why not."""
        headers = self._headers(request.twin_id)
        payload = request.model_dump_json().encode()
        started = time.perf_counter()
        try:
            if trace.get_current_span().is_recording():
                with tracer.start_as_current_span("POST /chat", kind=trace.SpanKind.CLIENT):
                    propagate.inject(headers)
                    reply = await self.client.request(
                        "POST", "/chat", body=payload, headers=headers.items()
                    )
            else:
                reply = await self.client.request(
                    "POST", "/chat", body=payload, headers=headers.items()
                )
        except (UpstreamError, ValueError) as err:
            raise _unreachable(err) from None
        return _complete(reply, time.perf_counter() - started, str(uuid.uuid4()))


def _complete(reply: UpstreamResponse, elapsed: float, message_id: str) -> CompleteMessage:
    """The ``complete_message`` for an orchestrator reply, or ChatError for a non-reply."""
    CHAT_LATENCY.observe(elapsed)
    body = _chat_response(reply)
    if body is None:
        if reply.is_success:
            raise ChatError(
                "Orchestrator error: the orchestrator's reply is not a chat response",
                "orchestrator_reply",
            )
        raise ChatError(
            f"Orchestrator error: Orchestrator returned error status {reply.status}: "
            f"{reply.body[:MAX_ERROR_BODY].decode(errors='replace')}",
            "orchestrator_status",
        )
    # An error reply in the chat shape (an expired approval, a mismatch, a backend
    # down) is shown to the user as a message with status "error", as originally.
    return CompleteMessage(
        id=message_id,
        content=body.response,
        latency_ms=round(elapsed * 1000),
        source_memories=body.source_memories or [],
        issued_command=body.issued_command,
        raw_orchestrator_decision=body.raw_orchestrator_decision,
        status=body.status if reply.is_success else "error",
        actions_taken=body.actions_taken,
        job_id=body.job_id,
        tool_result=body.tool_result,
        error=body.error,
    )


def _chat_response(reply: UpstreamResponse) -> OrchestratorResponse | None:
    try:
        return OrchestratorResponse.model_validate_json(reply.body)
    except ValidationError:
        return None


def _unreachable(err: Exception) -> ChatError:
    """The original's words when the orchestrator cannot be reached at all."""
    return ChatError(
        f"Orchestrator error: Request to orchestrator failed: {err}", "orchestrator_unreachable"
    )
