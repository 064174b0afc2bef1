"""The gateway's wire contracts: WebSocket frames in and out, and the orchestrator's /chat.

Frame shapes are the original system's (``complete_message``, ``status_update``,
``message_chunk``), so its web UI keeps working; the fixes are in the values:
``latency_ms`` is measured, ``source_memories`` carries memory ids and
``namespace`` is passed on. One frame is new: ``approval_decision``, which a
client sends to decide a request by id (edit, deny with a reason, approve for
the session); the original UI never sends it and decides with chat messages.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter


class ChatFrame(BaseModel):
    """What the UI sends over ``/ws/chat/{user_id}``; unknown fields are ignored, as originally."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(min_length=1, max_length=200)
    user_id: str = Field(min_length=1, max_length=200)
    message: str
    timestamp: str | None = None  # the client's clock, as the original sends it; not used
    namespace: str | None = Field(None, max_length=64)


class DecisionFrame(BaseModel):
    """A decision on one approval request, by id (the console sends these)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["approval_decision"]
    session_id: str = Field(min_length=1, max_length=200)
    user_id: str = Field(min_length=1, max_length=200)
    request_id: str = Field(min_length=1, max_length=256)
    decision: Literal["approve", "deny"]
    scope: Literal["once", "session"] = "once"
    arguments: dict[str, str] | None = None
    reason: str | None = Field(None, min_length=1, max_length=2_000)
    arguments_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    timestamp: str | None = None


def _frame_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "decision" if kind == "approval_decision" else "chat"


# A frame naming type "approval_decision" is a decision; any other is the original's chat frame.
INBOUND_FRAME: TypeAdapter[ChatFrame | DecisionFrame] = TypeAdapter(
    Annotated[
        Annotated[ChatFrame, Tag("chat")] | Annotated[DecisionFrame, Tag("decision")],
        Discriminator(_frame_kind),
    ]
)


class OrchestratorRequest(BaseModel):
    """The body of ``POST {ORCHESTRATOR_URL}/chat``."""

    message: str
    twin_id: str
    session_id: str
    namespace: str | None = None


class OrchestratorStreamRequest(OrchestratorRequest):
    """``/chat`` asking for the reply as it is made (application/x-ndjson)."""

    stream: Literal[True] = True


class StreamChunk(BaseModel):
    """A line of the orchestrator's streamed reply: a piece of the answer."""

    type: Literal["message_chunk"]
    content_chunk: str


class StreamComplete(BaseModel):
    """The last line: the reply, and the status it would have had unstreamed."""

    type: Literal["complete"]
    status_code: int = Field(200, ge=100, le=599)
    reply: dict[str, Any]


# One line of POST /chat's application/x-ndjson reply (docs/orchestrator.md, Streaming).
STREAM_LINE: TypeAdapter[StreamChunk | StreamComplete] = TypeAdapter(
    Annotated[StreamChunk | StreamComplete, Field(discriminator="type")]
)


class OrchestratorDecision(BaseModel):
    """The body of ``POST {ORCHESTRATOR_URL}/v1/approvals/{id}/approve|deny``."""

    session_id: str
    twin_id: str
    arguments: dict[str, str] | None = None
    scope: Literal["once", "session"] | None = None
    reason: str | None = None
    arguments_hash: str | None = None
    stream: bool | None = None


class OrchestratorResponse(BaseModel):
    """The orchestrator's /chat reply; fields this gateway does not know are kept, not refused."""

    model_config = ConfigDict(extra="allow")

    response: str
    job_id: str | None = None
    actions_taken: list[str] = Field(default_factory=list)
    status: str = "completed"
    issued_command: dict[str, Any] | None = None
    raw_orchestrator_decision: str | None = None
    source_memories: list[str] | None = None
    tool_result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


OMITTED_WHEN_ABSENT = ("raw_orchestrator_decision", "tool_result", "error")


class CompleteMessage(BaseModel):
    """The reply to one chat frame."""

    type: Literal["complete_message"] = "complete_message"
    id: str
    content: str
    is_final: bool = True
    latency_ms: int
    source_memories: list[str]
    issued_command: dict[str, Any] | None
    raw_orchestrator_decision: str | None = None
    status: str = "completed"
    actions_taken: list[str] = Field(default_factory=list)
    job_id: str | None = None
    tool_result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_frame(self) -> str:
        """The JSON frame: ``issued_command`` always present; absent optional fields omitted."""
        absent = {name for name in OMITTED_WHEN_ABSENT if getattr(self, name) is None}
        return self.model_dump_json(exclude=absent)


class MessageChunk(BaseModel):
    """A piece of a reply being made; its ``complete_message`` (same ``id``) follows."""

    type: Literal["message_chunk"] = "message_chunk"
    id: str
    content_chunk: str
    is_final: bool = False


class StatusUpdate(BaseModel):
    """``{"type":"status_update","status":"error"|"busy"|"ready","details":...}``."""

    type: Literal["status_update"] = "status_update"
    status: Literal["error", "busy", "ready"]
    details: str = ""
