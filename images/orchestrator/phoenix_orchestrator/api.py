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
    # Ask for an application/x-ndjson reply: answer text as it is planned, then the reply.
    stream: bool = False


class ShowMemoryPage(BaseModel):
    """Ask the UI to show a memory search for approval; ``memory_id`` is the request id."""

    command: Literal["show_memory_page"] = "show_memory_page"
    memory_id: str
    query: str
    request_id: str
    expires_at: datetime
    arguments_hash: str | None = None
    on_timeout: Literal["deny", "approve"] | None = None
    step: int | None = None


class ExecuteTool(BaseModel):
    """Ask the UI to show a tool run for approval."""

    command: Literal["execute_tool"] = "execute_tool"
    tool_name: str
    arguments: dict[str, str]
    request_id: str
    expires_at: datetime
    arguments_hash: str | None = None
    on_timeout: Literal["deny", "approve"] | None = None
    step: int | None = None


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
    # The agent turn this reply belongs to and how many planner steps it has taken.
    turn_id: str | None = None
    steps: int | None = None
    grant_id: str | None = None
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
    # A display name; the gateway's X-Phoenix-Principal, when present, is who decided.
    actor: _Id | None = None
    # Set by a caller that acts for one twin (the gateway): a request of another
    # twin is then answered as not found, exactly like an unknown id.
    twin_id: _Id | None = None
    # approve only: the call as edited (checked again before it runs), and the scope.
    arguments: dict[str, Annotated[str, Field(max_length=1_000_000)]] | None = Field(
        None, max_length=16
    )
    scope: Literal["once", "session"] = "once"
    # deny: why; the planner is shown it and may answer or try something else.
    reason: str | None = Field(None, min_length=1, max_length=2_000)
    # The arguments_hash the decider saw; a different one is refused as stale (409).
    arguments_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    stream: bool = False


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


StateFilter = Literal[
    "pending", "approved", "running", "denied", "expired", "executed", "failed", "interrupted",
    "all", "decided",
]  # fmt: skip


class ApprovalQuery(BaseModel):
    """Query of ``GET /v1/approvals``: whose requests, in which state, which page."""

    model_config = ConfigDict(extra="ignore")

    session_id: _Id | None = None
    twin_id: _Id | None = None
    state: StateFilter = "pending"
    limit: int = Field(50, ge=1, le=200)
    page_token: str | None = Field(None, max_length=64)


class AuditEvent(BaseModel):
    """One audit line of a request."""

    event: str
    actor: str
    principal: str | None = None
    channel: str
    at: datetime
    arguments_hash: str
    detail: str = ""


class ApprovalRecord(BaseModel):
    """A request of any state, as the audit query shows it."""

    request_id: str
    kind: Literal["memory", "tool"]
    twin_id: str
    session_id: str
    namespace: str
    status: str
    tool_name: str | None = None
    query: str | None = None
    arguments: dict[str, str] | None = None
    arguments_hash: str
    approved_arguments: dict[str, str] | None = None
    approved_arguments_hash: str | None = None
    policy_rule: str
    on_timeout: Literal["deny", "approve"]
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    principal: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    grant_id: str | None = None
    turn_id: str | None = None
    step: int
    result: str | None = None
    audit: list[AuditEvent] = []


class PendingApprovals(BaseModel):
    """``GET /v1/approvals`` reply, newest first.

    ``pending`` (live pending requests, as before) is filled for ``state=pending``;
    ``items`` holds the page of records for every state, ``next_page_token`` the
    token of the next page.
    """

    session_id: str | None
    twin_id: str | None = None
    state: str = "pending"
    pending: list[PendingApproval]
    items: list[ApprovalRecord] = []
    next_page_token: str | None = None


class GrantView(BaseModel):
    """A session grant."""

    grant_id: str
    twin_id: str
    session_id: str
    tool: str
    covers: str
    pattern: dict[str, Any]
    created_by: str
    principal: str | None
    created_at: datetime
    source_request_id: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    uses: int


class GrantList(BaseModel):
    """``GET /v1/approvals/grants`` reply, newest first."""

    session_id: str
    grants: list[GrantView]


class GrantRevocation(BaseModel):
    """Body of ``POST /v1/approvals/grants/{grant_id}/revoke``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    session_id: _Id
    twin_id: _Id | None = None
    actor: _Id | None = None


class Health(BaseModel):
    """``GET /health`` reply."""

    service: str
    status: Literal["ok"]
    version: str
