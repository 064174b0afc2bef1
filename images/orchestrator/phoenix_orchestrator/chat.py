"""The ``/chat`` round trip: plan a message, park memory and tool actions for approval.

Decisions arrive as chat messages (``approvals.messages``) or through the
approvals API by request id; both end in ``decisions.Decisions``. Nothing
reaches memory or tools without an approved request (see ``execution``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

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
from phoenix_orchestrator.approvals import ApprovalKind, ApprovalRequest, messages
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.decisions import Clock, Decisions
from phoenix_orchestrator.errors import NoPendingRequest, PlanningUnavailable
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning import LLMPlanningError, Plan
from phoenix_orchestrator.planning.planner import Planner
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_orchestrator.tool_args import missing_args

logger = logging.getLogger(__name__)

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
        self._planner = planner
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self.decisions = Decisions(
            store=store,
            executor=executor,
            metrics=metrics,
            clock=clock,
            retention=timedelta(days=settings.approval_retention_days),
        )

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
        if not decision.approve:
            return await self.decisions.deny_by_message(
                request, decision.kind, decision.subject, actor, job_id
            )
        if decision.kind == "tool":
            target = await self.decisions.tool_by_name(request, decision.subject, actor)
        else:
            target = await self.decisions.memory_by_id(request, decision.subject, actor)
        return await self.decisions.decide(
            target, approve=True, actor=actor, channel="chat", job_id=job_id
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
        # Set after validation: both are plain strings the planner produced.
        reply.planner, reply.planner_error = plan.planner, plan.planner_error
        return reply

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
        await self.decisions.audit(pending, "requested", actor=plan.planner, channel="planner")
        return pending

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
        return await self.decisions.decide(
            found, approve=approve, actor=actor, channel="api", job_id=str(uuid.uuid4())
        )

    async def sweep(self) -> None:
        """Mark overdue requests expired; drop old history (at startup)."""
        await self.decisions.sweep()
