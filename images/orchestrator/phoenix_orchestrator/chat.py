"""The ``/chat`` round trip: plan a message, park memory and tool actions for approval.

Decisions arrive as chat messages (``approvals.messages``) or through the
approvals API by request id; both end in ``ChatService.decide``. Nothing reaches
memory or tools without an approved request (see ``execution``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from phoenix_orchestrator import execution
from phoenix_orchestrator.actions import SUPPORTED_TOOLS, ActionMemory, ActionTool
from phoenix_orchestrator.api import (
    ChatRequest,
    ChatResponse,
    ExecuteTool,
    IssuedCommand,
    PendingApproval,
    ShowMemoryPage,
)
from phoenix_orchestrator.approvals import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    AuditEntry,
    messages,
)
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.backends import missing_args
from phoenix_orchestrator.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalMismatch,
    BackendUnavailable,
    NoPendingRequest,
    PlanningUnavailable,
)
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning import Plan
from phoenix_orchestrator.planning.llm import LLMPlanningError
from phoenix_orchestrator.planning.planner import Planner
from phoenix_orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DEFAULT_NAMESPACE = "default"


def issued_command(request: ApprovalRequest) -> IssuedCommand:
    """The UI command that asks a human to approve ``request``."""
    if request.kind == "memory":
        return ShowMemoryPage(
            memory_id=request.request_id,
            query=request.query or "",
            request_id=request.request_id,
            expires_at=request.expires_at,
        )
    return ExecuteTool(
        tool_name=request.tool_name or "",
        arguments=dict(request.arguments),
        request_id=request.request_id,
        expires_at=request.expires_at,
    )


def pending_view(request: ApprovalRequest) -> PendingApproval:
    return PendingApproval(
        request_id=request.request_id,
        kind=request.kind,
        twin_id=request.twin_id,
        session_id=request.session_id,
        namespace=request.namespace,
        query=request.query,
        tool_name=request.tool_name,
        arguments=dict(request.arguments) if request.kind == "tool" else None,
        created_at=request.created_at,
        expires_at=request.expires_at,
        raw_orchestrator_decision=request.raw_decision,
        issued_command=issued_command(request),
    )


class ChatService:
    """Plans messages, keeps approval requests, executes what was approved."""

    def __init__(
        self,
        *,
        settings: OrchestratorSettings,
        planner: Planner,
        store: ApprovalStore,
        executor: execution.Executor,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._ttl = timedelta(seconds=settings.approval_ttl_seconds)
        self._retention = timedelta(days=settings.approval_retention_days)
        self._planner = planner
        self._store = store
        self._executor = executor
        self._metrics = metrics
        self._clock = clock

    # -- /chat ------------------------------------------------------------------

    async def chat(self, request: ChatRequest, *, actor: str) -> ChatResponse:
        job_id = str(uuid.uuid4())
        decision = messages.parse(request.message)
        if decision is None:
            return await self._plan(request, job_id)
        if decision.kind == "config":
            return ChatResponse(
                response="There is no pending configuration request; this orchestrator does "
                "not ask for configuration, so the reply was not used.",
                job_id=job_id,
                actions_taken=["config_response_ignored"],
            )
        if decision.kind == "tool":
            target = await self._tool_by_name(request, decision.subject, decision.approve, actor)
        else:
            target = await self._memory_by_id(request, decision.subject, decision.approve, actor)
        return await self.decide(
            target, approve=decision.approve, actor=actor, channel="chat", job_id=job_id
        )

    async def _plan(self, request: ChatRequest, job_id: str) -> ChatResponse:
        try:
            plan = await self._planner.plan(
                request.message, request.twin_id, self._clock().astimezone().date()
            )
        except LLMPlanningError as err:
            raise PlanningUnavailable(
                f"Orchestrator LLM planning failed: {err}",
                actions_taken=["llm_planning_failed"],
            ) from None
        actions: list[str] = []
        if plan.planner == "deterministic-fallback":
            actions.append(
                f"llm_planning_failed: deterministic planner used ({plan.planner_error})"
            )
        reply = await self._dispatch(request, plan, job_id, actions)
        return reply.model_copy(
            update={"planner": plan.planner, "planner_error": plan.planner_error}
        )

    async def _dispatch(
        self, request: ChatRequest, plan: Plan, job_id: str, actions: list[str]
    ) -> ChatResponse:
        action = plan.action
        if isinstance(action, ActionMemory):
            pending = await self._park(request, plan, kind="memory", query=action.details.query)
            return ChatResponse(
                response="Authorization required to run a memory search. "
                "Please approve or deny in the UI.",
                job_id=job_id,
                actions_taken=[*actions, f"Memory authorization requested: {pending.request_id}"],
                issued_command=issued_command(pending),
                raw_orchestrator_decision=plan.raw_decision,
                request_id=pending.request_id,
            )
        if isinstance(action, ActionTool):
            tool = action.details.tool_name
            if tool not in SUPPORTED_TOOLS:
                return ChatResponse(
                    response=f"Tool '{tool}' is not available. "
                    f"Supported tools: {', '.join(SUPPORTED_TOOLS)}.",
                    job_id=job_id,
                    actions_taken=[*actions, "unsupported_tool_requested"],
                    raw_orchestrator_decision=plan.raw_decision,
                )
            missing = missing_args(tool, action.details.args)
            if missing:
                return ChatResponse(
                    response=f"Tool '{tool}' was planned without the argument(s) it needs: "
                    f"{', '.join(missing)}. Please rephrase the request.",
                    job_id=job_id,
                    actions_taken=[*actions, "incomplete_tool_arguments"],
                    raw_orchestrator_decision=plan.raw_decision,
                )
            pending = await self._park(
                request, plan, kind="tool", tool_name=tool, arguments=action.details.args
            )
            return ChatResponse(
                response=f"Authorization required to execute tool '{tool}'. "
                "Please approve or deny in the UI.",
                job_id=job_id,
                actions_taken=[*actions, f"Tool authorization requested: {tool}"],
                issued_command=issued_command(pending),
                raw_orchestrator_decision=plan.raw_decision,
                request_id=pending.request_id,
            )
        builtin = plan.planner == "builtin"
        return ChatResponse(
            response=action.details.content,
            job_id=job_id,
            actions_taken=[
                *actions,
                "Direct response generated (builtin)" if builtin else "Direct response generated",
            ],
            raw_orchestrator_decision=plan.raw_decision if builtin else None,
        )

    async def _park(
        self,
        request: ChatRequest,
        plan: Plan,
        *,
        kind: ApprovalKind,
        query: str | None = None,
        tool_name: str | None = None,
        arguments: dict[str, str] | None = None,
    ) -> ApprovalRequest:
        now = self._clock()
        pending = ApprovalRequest(
            request_id=str(uuid.uuid4()),
            kind=kind,
            twin_id=request.twin_id,
            session_id=request.session_id,
            namespace=request.namespace or DEFAULT_NAMESPACE,
            query=query,
            tool_name=tool_name,
            arguments=arguments or {},
            raw_decision=plan.raw_decision,
            planner=plan.planner,
            created_at=now,
            expires_at=now + self._ttl,
        )
        await self._store.add(pending)
        await self._audit(pending, "requested", actor=plan.planner, channel="planner")
        return pending

    # -- finding the request a chat message means --------------------------------

    async def _tool_by_name(
        self, request: ChatRequest, tool_name: str, approve: bool, actor: str
    ) -> ApprovalRequest:
        pending = await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind="tool"
        )
        verb = "execute" if approve else "deny"
        if not pending:
            self._metrics.approvals.labels(kind="tool", outcome="not_found").inc()
            raise NoPendingRequest(
                f"No pending tool request found to {verb}.", actions_taken=["no_pending_tool"]
            )
        now = self._clock()
        named = [p for p in pending if p.tool_name == tool_name]
        if not named:
            names = ", ".join(sorted({p.tool_name or "" for p in pending}))
            self._metrics.approvals.labels(kind="tool", outcome="mismatch").inc()
            await self._audit(
                pending[0],
                "mismatch",
                actor=actor,
                channel="chat",
                detail=f"received tool '{tool_name}'",
            )
            raise ApprovalMismatch(
                f"Tool authorization mismatch: pending='{names}' but received='{tool_name}'. "
                "The pending request was kept.",
                actions_taken=["tool_authorization_mismatch"],
            )
        # Several pending calls of one tool: the newest live one is the one just shown.
        live = [p for p in named if not p.expired(now)]
        return (live or named)[0]

    async def _memory_by_id(
        self, request: ChatRequest, memory_id: str, approve: bool, actor: str
    ) -> ApprovalRequest:
        found = await self._store.get(memory_id) if memory_id else None
        if (
            found is not None
            and found.kind == "memory"
            and found.session_id == request.session_id
            and found.twin_id == request.twin_id
        ):
            return found
        pending = await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind="memory"
        )
        if not pending:
            self._metrics.approvals.labels(kind="memory", outcome="not_found").inc()
            verb = "execute" if approve else "deny"
            raise NoPendingRequest(
                f"No pending memory request found to {verb}.",
                actions_taken=["no_pending_memory"],
            )
        self._metrics.approvals.labels(kind="memory", outcome="mismatch").inc()
        await self._audit(
            pending[0],
            "mismatch",
            actor=actor,
            channel="chat",
            detail=f"received memory id '{memory_id}'",
        )
        ids = ", ".join(p.request_id for p in pending)
        raise ApprovalMismatch(
            f"Memory authorization mismatch: pending='{ids}' but received='{memory_id}'. "
            "The pending request was kept.",
            actions_taken=["memory_authorization_mismatch"],
        )

    # -- the approvals API -------------------------------------------------------

    async def list_pending(self, session_id: str, twin_id: str | None) -> list[PendingApproval]:
        now = self._clock()
        pending = await self._store.pending(session_id, twin_id=twin_id)
        return [pending_view(p) for p in pending if not p.expired(now)]

    async def decide_by_id(
        self,
        request_id: str,
        *,
        session_id: str,
        approve: bool,
        actor: str,
        twin_id: str | None = None,
    ) -> ChatResponse:
        found = await self._store.get(request_id)
        if (
            found is None
            or found.session_id != session_id
            or (twin_id is not None and found.twin_id != twin_id)
        ):
            self._metrics.approvals.labels(kind="unknown", outcome="not_found").inc()
            raise NoPendingRequest(
                f"No approval request '{request_id}' in session '{session_id}'.",
                actions_taken=["approval_not_found"],
            )
        return await self.decide(
            found, approve=approve, actor=actor, channel="api", job_id=str(uuid.uuid4())
        )

    async def sweep(self) -> None:
        """Mark overdue requests expired; drop history older than APPROVAL_RETENTION_DAYS."""
        now = self._clock()
        for overdue in await self._store.overdue(now):
            if await self._store.transition(overdue.request_id, source="pending", target="expired"):
                await self._audit(overdue, "expired", actor="orchestrator", channel="sweep")
                self._metrics.approvals.labels(kind=overdue.kind, outcome="expired").inc()
        if self._retention:
            removed = await self._store.prune(now - self._retention)
            if removed:
                logger.info("approval history pruned", extra={"rows": removed})

    # -- deciding ----------------------------------------------------------------

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
            if await self._store.transition(rid, source="pending", target="expired"):
                await self._audit(target, "expired", actor=actor, channel=channel)
                self._metrics.approvals.labels(kind=target.kind, outcome="expired").inc()
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
        await self._audit(target, outcome, actor=actor, channel=channel)
        self._metrics.approvals.labels(kind=target.kind, outcome=outcome).inc()
        if not approve:
            return execution.denied(target, job_id)
        return await self._execute(target, actor=actor, channel=channel, job_id=job_id)

    async def _execute(
        self, target: ApprovalRequest, *, actor: str, channel: str, job_id: str
    ) -> ChatResponse:
        rid = target.request_id
        try:
            reply = await self._executor.run(target, actor=actor, job_id=job_id)
        except BackendUnavailable:
            # Nothing ran: the request goes back to pending so it can be approved again.
            await self._store.transition(rid, source="approved", target="pending")
            await self._audit(
                target,
                "returned_to_pending",
                actor=actor,
                channel=channel,
                detail="dependency unavailable",
            )
            raise
        except Exception as err:
            await self._store.transition(rid, source="approved", target="failed")
            await self._audit(
                target, "failed", actor=actor, channel=channel, detail=type(err).__name__
            )
            raise
        await self._store.transition(rid, source="approved", target="executed")
        await self._audit(target, "executed", actor=actor, channel=channel)
        return reply

    async def _audit(
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
