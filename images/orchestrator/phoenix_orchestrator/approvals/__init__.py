"""Approval requests: a memory query or tool run parked until a human (or a rule) decides.

A request is created ``pending`` with an expiry and what happens then
(``on_timeout``). A decision moves it, exactly once, to ``approved`` or
``denied``; time moves it to ``expired`` (or, with ``on_timeout: approve``, to
``approved``). An approved request is claimed ``running`` in its own commit
right before the memory or tools call and ends ``executed`` or ``failed``; if
the process dies in between, the next start marks it ``interrupted`` and never
runs it again. An approved request whose dependency was unreachable goes back to
``pending`` (nothing ran), so it can be approved again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

ApprovalKind = Literal["memory", "tool"]
ApprovalStatus = Literal[
    "pending", "approved", "running", "denied", "expired", "executed", "failed", "interrupted"
]
TimeoutAction = Literal["deny", "approve"]
STATUSES: tuple[ApprovalStatus, ...] = (
    "pending",
    "approved",
    "running",
    "denied",
    "expired",
    "executed",
    "failed",
    "interrupted",
)


class ApprovalRequest(BaseModel):
    """One request, the planner decision it came from, and how it was decided."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    kind: ApprovalKind
    twin_id: str
    session_id: str
    namespace: str
    query: str | None = None
    tool_name: str | None = None
    arguments: dict[str, str] = {}
    arguments_hash: str = ""
    raw_decision: str
    planner: str
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None
    # What the human approved when they edited the call; the proposal stays in ``arguments``.
    approved_arguments: dict[str, str] | None = None
    approved_hash: str | None = None
    principal: str | None = None
    reason: str | None = None
    policy_rule: str = "ask:default"
    on_timeout: TimeoutAction = "deny"
    turn_id: str | None = None
    step: int = 1
    grant_id: str | None = None
    result: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now

    @property
    def subject(self) -> str:
        """What the request is about, for replies and logs (no user text)."""
        return f"tool '{self.tool_name}'" if self.kind == "tool" else "memory search"

    @property
    def policy_tool(self) -> str:
        """The name approval rules use: the tool's, or ``memory`` for a memory search."""
        return (self.tool_name or "") if self.kind == "tool" else "memory"

    @property
    def effective_arguments(self) -> dict[str, str]:
        """The arguments that run: the human's edit if there was one, else the proposal."""
        if self.approved_arguments is not None:
            return dict(self.approved_arguments)
        if self.kind == "memory":
            return {"query": self.query or ""}
        return dict(self.arguments)

    @property
    def effective_query(self) -> str:
        return self.effective_arguments.get("query", self.query or "")


class AuditEntry(BaseModel):
    """One line of the audit trail: who did what to which request, when, to which arguments."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    event: str
    actor: str
    channel: str
    at: datetime
    detail: str = ""
    principal: str | None = None
    arguments_hash: str = ""
