"""Approval requests: a memory query or tool run parked until a human decides.

A request is created ``pending`` with an expiry. A decision moves it, exactly
once, to ``approved`` (then ``executed`` or ``failed``) or ``denied``; time
moves it to ``expired``. An approved request whose dependency was unreachable
goes back to ``pending`` so it can be approved again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

ApprovalKind = Literal["memory", "tool"]
ApprovalStatus = Literal["pending", "approved", "denied", "expired", "executed", "failed"]


class ApprovalRequest(BaseModel):
    """One request and the planner decision it came from."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    kind: ApprovalKind
    twin_id: str
    session_id: str
    namespace: str
    query: str | None = None
    tool_name: str | None = None
    arguments: dict[str, str] = {}
    raw_decision: str
    planner: str
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now

    @property
    def subject(self) -> str:
        """What the request is about, for replies and logs (no user text)."""
        return f"tool '{self.tool_name}'" if self.kind == "tool" else "memory search"


class AuditEntry(BaseModel):
    """One line of the audit trail: who did what to which request, when."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    event: str
    actor: str
    channel: str
    at: datetime
    detail: str = ""
