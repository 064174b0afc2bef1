"""HTTP contracts: what clients send and what they get back.

``ChatRequest``/``ChatResponse`` keep the original's field names; new fields
(``request_id``, ``source_memories``, ``planner``, ...) are additive and left
out of the JSON when empty, as the original did for ``issued_command``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS = 32_000
_Id = Annotated[str, Field(min_length=1, max_length=256)]


class ChatRequest(BaseModel):
    """``POST /chat`` body; the gateway sends it per chat frame."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    twin_id: _Id
    session_id: _Id
    namespace: str | None = Field(None, max_length=256)


class ShowMemoryPage(BaseModel):
    """Ask the UI to show a memory search for approval; ``memory_id`` is the request id."""

    command: Literal["show_memory_page"] = "show_memory_page"
    memory_id: str
    query: str
    request_id: str
    expires_at: datetime


class ExecuteTool(BaseModel):
    """Ask the UI to show a tool run for approval."""

    command: Literal["execute_tool"] = "execute_tool"
    tool_name: str
    arguments: dict[str, str]
    request_id: str
    expires_at: datetime


IssuedCommand = Annotated[ShowMemoryPage | ExecuteTool, Field(discriminator="command")]


class ToolResult(BaseModel):
    """What the tools service reported for an approved run."""

    success: bool
    exit_code: int
    stdout: list[str]
    stderr: list[str]
    message: str
    execution_id: str


class ErrorInfo(BaseModel):
    """Machine-readable part of an error reply."""

    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ChatResponse(BaseModel):
    """The answer to ``/chat`` and to the approvals API, success or error."""

    response: str
    job_id: str | None
    actions_taken: list[str]
    status: Literal["completed", "error"] = "completed"
    issued_command: IssuedCommand | None = None
    raw_orchestrator_decision: str | None = None
    request_id: str | None = None
    source_memories: list[str] | None = None
    tool_result: ToolResult | None = None
    planner: str | None = None
    planner_error: str | None = None
    error: ErrorInfo | None = None


def error_response(
    code: str,
    message: str,
    *,
    actions_taken: list[str],
    details: list[dict[str, Any]] | None = None,
) -> ChatResponse:
    """An error reply: ``response`` is the sentence a user reads, ``error`` the machine part."""
    return ChatResponse(
        response=message,
        job_id=str(uuid.uuid4()),
        actions_taken=actions_taken,
        status="error",
        error=ErrorInfo(code=code, message=message, details=details),
    )


class ApprovalDecision(BaseModel):
    """Body of ``POST /v1/approvals/{request_id}/approve`` and ``.../deny``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    session_id: _Id
    actor: _Id
    # Set by a caller that acts for one twin (the gateway): a request of another
    # twin is then answered as not found, exactly like an unknown id.
    twin_id: _Id | None = None


class PendingApproval(BaseModel):
    """One request waiting for a human."""

    request_id: str
    kind: Literal["memory", "tool"]
    twin_id: str
    session_id: str
    namespace: str
    query: str | None = None
    tool_name: str | None = None
    arguments: dict[str, str] | None = None
    created_at: datetime
    expires_at: datetime
    raw_orchestrator_decision: str
    issued_command: IssuedCommand


class PendingApprovals(BaseModel):
    """``GET /v1/approvals`` reply, newest first."""

    session_id: str
    pending: list[PendingApproval]


class Health(BaseModel):
    """``GET /health`` reply."""

    service: str
    status: Literal["ok"]
    version: str
