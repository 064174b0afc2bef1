"""The gateway's wire contracts: WebSocket frames in and out, and the orchestrator's /chat.

Frame shapes are the original system's (``complete_message``, ``status_update``),
so its web UI keeps working; the fixes are in the values: ``latency_ms`` is
measured, ``source_memories`` carries memory ids and ``namespace`` is passed on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class ChatFrame(BaseModel):
    """What the UI sends over ``/ws/chat/{user_id}``; unknown fields are ignored, as originally."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(min_length=1, max_length=200)
    user_id: str = Field(min_length=1, max_length=200)
    message: str
    timestamp: str = Field(default_factory=_now_iso)
    namespace: str | None = Field(None, max_length=64)


class OrchestratorRequest(BaseModel):
    """The body of ``POST {ORCHESTRATOR_URL}/chat``."""

    message: str
    twin_id: str
    session_id: str
    namespace: str | None = None


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


class StatusUpdate(BaseModel):
    """``{"type":"status_update","status":"error"|"busy"|"ready","details":...}``."""

    type: Literal["status_update"] = "status_update"
    status: Literal["error", "busy", "ready"]
    details: str = ""
