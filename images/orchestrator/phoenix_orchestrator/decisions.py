"""Deciding approval requests: by chat message or by id, exactly once, audited.

A chat message names a request the way the original UI does (a tool name, a
memory id). The outcomes keep the original's wording and, on ``/chat``, its
shape: a conversational outcome (nothing pending, a mismatch) is a chat reply
with ``status: "error"``, raised here as a ``conversational`` ReplyError. What
this orchestrator keeps stronger than the original: requests are durable, a
mismatch leaves them pending, and each is decided once (an atomic
compare-and-set in the store) even when a chat message and the API race.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from phoenix_orchestrator import execution
from phoenix_orchestrator.api import ChatRequest, ChatResponse
from phoenix_orchestrator.approvals import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    AuditEntry,
)
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalMismatch,
    BackendUnavailable,
    NoPendingRequest,
)
from phoenix_orchestrator.observability import Metrics

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Decisions:
    """The approval state machine over the store; the only writer of decisions."""

    def __init__(
        self,
        *,
        store: ApprovalStore,
        executor: execution.Executor,
        metrics: Metrics,
        clock: Clock,
        retention: timedelta,
    ) -> None:
        self._store = store
        self._executor = executor
        self._metrics = metrics
        self._clock = clock
        self._retention = retention

    # -- what a chat message names ------------------------------------------------

    async def tool_by_name(
        self, request: ChatRequest, tool_name: str, actor: str
    ) -> ApprovalRequest:
        """The pending call of ``tool_name`` a ``[TOOL_EXECUTED]`` message approves."""
        pending = await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind="tool"
        )
        if not pending:
            self._metrics.approvals.labels(kind="tool", outcome="not_found").inc()
            raise NoPendingRequest(
                "No pending tool request found to execute.", actions_taken=["no_pending_tool"]
            )
        named = [p for p in pending if p.tool_name == tool_name]
        if not named:
            names = ", ".join(sorted({p.tool_name or "" for p in pending}))
            self._metrics.approvals.labels(kind="tool", outcome="mismatch").inc()
            await self.audit(
                pending[0],
                "mismatch",
                actor=actor,
                channel="chat",
                detail=f"received '{tool_name}'",
            )
            raise ApprovalMismatch(
                f"Tool authorization mismatch: pending='{names}' but received='{tool_name}'",
                actions_taken=["tool_authorization_mismatch"],
            )
        # Several pending calls of one tool: the newest live one is the one just shown.
        now = self._clock()
        live = [p for p in named if not p.expired(now)]
        return (live or named)[0]

    async def memory_by_id(
        self, request: ChatRequest, memory_id: str, actor: str
    ) -> ApprovalRequest:
        """The memory request a ``[MEMORY_SHOWN]`` message approves."""
        found = await self._own_memory_request(request, memory_id)
        if found is not None:
            return found
        pending = await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind="memory"
        )
        if not pending:
            self._metrics.approvals.labels(kind="memory", outcome="not_found").inc()
            raise NoPendingRequest(
                "No pending memory request found to execute.",
                actions_taken=["no_pending_memory"],
            )
        self._metrics.approvals.labels(kind="memory", outcome="mismatch").inc()
        await self.audit(
            pending[0], "mismatch", actor=actor, channel="chat", detail=f"received '{memory_id}'"
        )
        ids = ", ".join(p.request_id for p in pending)
        raise ApprovalMismatch(
            f"Memory authorization mismatch: pending='{ids}' but received='{memory_id}'",
            actions_taken=["memory_authorization_mismatch"],
        )

    async def _own_memory_request(
        self, request: ChatRequest, memory_id: str
    ) -> ApprovalRequest | None:
        found = await self._store.get(memory_id) if memory_id else None
        if (
            found is not None
            and found.kind == "memory"
            and found.session_id == request.session_id
            and found.twin_id == request.twin_id
        ):
            return found
        return None

    async def deny_by_message(
        self, request: ChatRequest, kind: ApprovalKind, subject: str, actor: str, job_id: str
    ) -> ChatResponse:
        """``[TOOL_DENIED]`` / ``[MEMORY_DENIED]``: nothing named runs, whatever was pending.

        A memory id that names a request of this session denies exactly that one.
        Otherwise every pending request of the kind in the twin's session is denied,
        as the original cleared its one pending entry whatever the name or id said:
        a denial never runs anything, so the broad reading is the safe one.
        """
        if kind == "memory":
            named = await self._own_memory_request(request, subject)
            if named is not None:
                return await self.decide(
                    named, approve=False, actor=actor, channel="chat", job_id=job_id
                )
        now = self._clock()
        denied: list[ApprovalRequest] = []
        pending = await self._store.pending(request.session_id, twin_id=request.twin_id, kind=kind)
        for target in pending:
            if target.expired(now):
                await self._expire(target, actor=actor, channel="chat")
            elif await self._store.transition(
                target.request_id, source="pending", target="denied", actor=actor, at=now
            ):
                await self.audit(target, "denied", actor=actor, channel="chat")
                self._metrics.approvals.labels(kind=kind, outcome="denied").inc()
                denied.append(target)
        if kind == "tool":
            name = subject or (denied[0].tool_name or "" if denied else "")
            return execution.tool_denied(name, job_id, denied[0] if denied else None)
        return execution.memory_denied(subject, job_id, denied[0] if denied else None)

    # -- deciding one request ------------------------------------------------------

    async def decide(
        self, target: ApprovalRequest, *, approve: bool, actor: str, channel: str, job_id: str
    ) -> ChatResponse:
        """Approve or deny ``target`` once; an approval runs it."""
        now = self._clock()
        rid = target.request_id
        if target.status != "pending":
            raise AlreadyDecided(
                f"Approval request '{rid}' ({target.subject}) was already {target.status}.",
                actions_taken=["approval_already_decided"],
            )
        if target.expired(now):
            await self._expire(target, actor=actor, channel=channel)
            raise ApprovalExpired(
                f"Approval request '{rid}' ({target.subject}) expired at "
                f"{target.expires_at.isoformat()}; send the message again for a new request.",
                actions_taken=["approval_expired"],
            )
        outcome: ApprovalStatus = "approved" if approve else "denied"
        if not await self._store.transition(
            rid, source="pending", target=outcome, actor=actor, at=now
        ):
            raise AlreadyDecided(
                f"Approval request '{rid}' ({target.subject}) was decided by someone else.",
                actions_taken=["approval_already_decided"],
            )
        await self.audit(target, outcome, actor=actor, channel=channel)
        self._metrics.approvals.labels(kind=target.kind, outcome=outcome).inc()
        if not approve:
            return execution.denied(target, job_id)
        return await self._execute(target, actor=actor, channel=channel, job_id=job_id)

    async def _expire(self, target: ApprovalRequest, *, actor: str, channel: str) -> None:
        if await self._store.transition(target.request_id, source="pending", target="expired"):
            await self.audit(target, "expired", actor=actor, channel=channel)
            self._metrics.approvals.labels(kind=target.kind, outcome="expired").inc()

    async def _execute(
        self, target: ApprovalRequest, *, actor: str, channel: str, job_id: str
    ) -> ChatResponse:
        rid = target.request_id
        try:
            reply = await self._executor.run(target, actor=actor, job_id=job_id)
        except BackendUnavailable:
            # Nothing ran: the request goes back to pending so it can be approved again.
            await self._store.transition(rid, source="approved", target="pending")
            await self.audit(
                target,
                "returned_to_pending",
                actor=actor,
                channel=channel,
                detail="dependency unavailable",
            )
            raise
        except Exception as err:
            await self._store.transition(rid, source="approved", target="failed")
            await self.audit(
                target, "failed", actor=actor, channel=channel, detail=type(err).__name__
            )
            raise
        await self._store.transition(rid, source="approved", target="executed")
        await self.audit(target, "executed", actor=actor, channel=channel)
        return reply

    async def sweep(self) -> None:
        """Mark overdue requests expired; drop history older than APPROVAL_RETENTION_DAYS."""
        now = self._clock()
        for overdue in await self._store.overdue(now):
            await self._expire(overdue, actor="orchestrator", channel="sweep")
        if self._retention:
            removed = await self._store.prune(now - self._retention)
            if removed:
                logger.info("approval history pruned", extra={"rows": removed})

    async def audit(
        self,
        target: ApprovalRequest,
        event: str,
        *,
        actor: str,
        channel: str,
        detail: str = "",
    ) -> None:
        at = self._clock()
        await self._store.audit(
            AuditEntry(
                request_id=target.request_id,
                event=event,
                actor=actor,
                channel=channel,
                at=at,
                detail=detail,
            )
        )
        logger.info(
            "approval audit",
            extra={
                "request_id": target.request_id,
                "event": event,
                "actor": actor,
                "channel": channel,
                "kind": target.kind,
                "tool_name": target.tool_name,
                "twin_id": target.twin_id,
                "session_id": target.session_id,
                "at": at.isoformat(),
            },
        )
