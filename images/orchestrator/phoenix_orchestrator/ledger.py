"""The ledger: every change to an approval request, written with its audit line, once.

An audit line says who (``actor``: a person's name, a rule, a grant or the
timeout; ``principal``: the authenticated caller the gateway vouched for, if
any), did what (``event``), through which channel, when, and to which
arguments (their hash). ``move`` writes the state change and its line in one
commit, guarded by the request's current status, so two racing callers never
both win and a crash never leaves a change without its line (or a line without
its change). Only after the commit is the line logged (without user text) and
the outcome counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from phoenix_orchestrator.approvals import ApprovalRequest, ApprovalStatus, AuditEntry
from phoenix_orchestrator.approvals.db import Statement
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.observability import Metrics

logger = logging.getLogger(__name__)

# Outcomes counted in phoenix_orchestrator_approvals_total{kind,outcome}.
OUTCOMES = (
    "requested", "approved", "approved_edited", "approved_for_session", "approved_by_grant",
    "approved_by_policy", "approved_on_timeout", "denied", "denied_by_policy", "expired",
    "executed", "failed", "interrupted", "stale", "duplicate", "not_found", "mismatch",
    "edit_refused",
)  # fmt: skip


class Ledger:
    """Writes request changes with their audit lines; logs and counts what was committed."""

    def __init__(
        self, store: ApprovalStore, metrics: Metrics, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self._metrics = metrics
        self._clock = clock

    def entry(
        self,
        target: ApprovalRequest,
        event: str,
        *,
        actor: str,
        channel: str,
        principal: str | None = None,
        detail: str = "",
        arguments_hash: str | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            request_id=target.request_id,
            event=event,
            actor=actor,
            channel=channel,
            at=self._clock(),
            detail=detail,
            principal=principal,
            arguments_hash=target.arguments_hash if arguments_hash is None else arguments_hash,
        )

    async def add(self, target: ApprovalRequest, entry: AuditEntry, *also: Statement) -> None:
        """Insert a new request with its first line (and ``also``) in one commit."""
        await self.store.add(target, entry, *also)
        self.committed(target, entry, "requested")

    async def move(
        self,
        target: ApprovalRequest,
        source: ApprovalStatus,
        status: ApprovalStatus,
        *,
        event: str,
        actor: str,
        channel: str,
        principal: str | None = None,
        detail: str = "",
        outcome: str | None = None,
        arguments_hash: str | None = None,
        also: Sequence[Statement] = (),
        columns: Mapping[str, Any] | None = None,
    ) -> bool:
        """``source`` -> ``status`` with its audit line, or False (nothing written) if the
        request was no longer in ``source``."""
        entry = self.entry(
            target,
            event,
            actor=actor,
            channel=channel,
            principal=principal,
            detail=detail,
            arguments_hash=arguments_hash,
        )
        moved = await self.store.transition(
            target.request_id, source=source, target=status, audit=entry, also=also,
            **(columns or {}),
        )  # fmt: skip
        if moved:
            self.committed(target, entry, outcome)
        return moved

    def committed(self, target: ApprovalRequest, entry: AuditEntry, outcome: str | None) -> None:
        """Log a written line, without user text, and count ``outcome`` if given."""
        if outcome is not None:
            self.count(target.kind, outcome)
        logger.info(
            "approval audit",
            extra={
                "request_id": target.request_id,
                "event": entry.event,
                "actor": entry.actor,
                "principal": entry.principal,
                "channel": entry.channel,
                "kind": target.kind,
                "tool_name": target.tool_name,
                "twin_id": target.twin_id,
                "session_id": target.session_id,
                "step": target.step,
                "arguments_hash": entry.arguments_hash,
                "at": entry.at.isoformat(),
            },
        )

    def count(self, kind: str, outcome: str) -> None:
        self._metrics.approvals.labels(kind=kind, outcome=outcome).inc()
