"""One chat frame, from the UI's JSON to the reply frame: parse, check, forward, wrap.

Routes (WebSocket and HTTP) call this module; it knows nothing about sockets.
Error texts are the original's, so its UI shows them unchanged.

Each frame is parsed and each reply read by pydantic straight from/to JSON
bytes; the request goes out on a kept-alive connection (``upstream``). With
tracing on, the call is a client span whose context travels in ``traceparent``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from opentelemetry import propagate, trace
from pydantic import ValidationError

from phoenix_gateway.contracts import (
    ChatFrame,
    CompleteMessage,
    OrchestratorRequest,
    OrchestratorResponse,
    StatusUpdate,
)
from phoenix_gateway.metrics import CHAT_LATENCY
from phoenix_gateway.upstream import UpstreamClient, UpstreamError, UpstreamResponse

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("phoenix_gateway.chat")

MAX_ERROR_BODY = 500
USER_MISMATCH = "User ID mismatch between path and request payload."


class ChatError(Exception):
    """A frame that gets an error ``status_update`` instead of a reply."""

    def __init__(self, details: str, outcome: str) -> None:
        super().__init__(details)
        self.details = details
        self.outcome = outcome

    def frame(self) -> str:
        return StatusUpdate(status="error", details=self.details).model_dump_json()


def parse_frame(text: str, path_user_id: str) -> ChatFrame:
    """The frame, or ChatError with the original's message for bad JSON or a user id mismatch."""
    try:
        frame = ChatFrame.model_validate_json(text)
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
    """Forwards chat requests to ``POST {ORCHESTRATOR_URL}/chat``."""

    client: UpstreamClient
    default_namespace: str | None = None

    def request_for(self, frame: ChatFrame) -> OrchestratorRequest:
        return OrchestratorRequest(
            message=frame.message,
            twin_id=frame.user_id,
            session_id=frame.session_id,
            namespace=frame.namespace or self.default_namespace,
        )

    async def send(self, request: OrchestratorRequest) -> CompleteMessage:
        """The orchestrator's reply as a ``complete_message``, or ChatError saying why not."""
        headers = {"content-type": "application/json", "x-user-id": request.twin_id}
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
            raise ChatError(
                f"Orchestrator error: Request to orchestrator failed: {err}",
                "orchestrator_unreachable",
            ) from None
        elapsed = time.perf_counter() - started
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
            id=str(uuid.uuid4()),
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
