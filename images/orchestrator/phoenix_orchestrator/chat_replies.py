"""The replies of the chat round trip, worded as the original worded them where it had them."""

from __future__ import annotations

from phoenix_orchestrator.api import (
    ApprovalRecord,
    AuditEvent,
    ChatResponse,
    ExecuteTool,
    IssuedCommand,
    PendingApproval,
    ShowMemoryPage,
)
from phoenix_orchestrator.approvals import ApprovalRequest, AuditEntry
from phoenix_orchestrator.gate import Proposal
from phoenix_orchestrator.planning import PlannedAction


def issued_command(request: ApprovalRequest) -> IssuedCommand:
    """The UI command that asks a human to approve ``request``."""
    extra = {
        "request_id": request.request_id,
        "expires_at": request.expires_at,
        "arguments_hash": request.arguments_hash or None,
        "on_timeout": request.on_timeout,
        "step": request.step,
    }
    if request.kind == "memory":
        return ShowMemoryPage(memory_id=request.request_id, query=request.query or "", **extra)
    return ExecuteTool(
        tool_name=request.tool_name or "", arguments=dict(request.arguments), **extra
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


def record_view(request: ApprovalRequest, trail: list[AuditEntry]) -> ApprovalRecord:
    return ApprovalRecord(
        request_id=request.request_id,
        kind=request.kind,
        twin_id=request.twin_id,
        session_id=request.session_id,
        namespace=request.namespace,
        status=request.status,
        tool_name=request.tool_name,
        query=request.query,
        arguments=dict(request.arguments) if request.kind == "tool" else None,
        arguments_hash=request.arguments_hash,
        approved_arguments=request.approved_arguments,
        approved_arguments_hash=request.approved_hash,
        policy_rule=request.policy_rule,
        on_timeout=request.on_timeout,
        created_at=request.created_at,
        expires_at=request.expires_at,
        decided_by=request.decided_by,
        principal=request.principal,
        decided_at=request.decided_at,
        reason=request.reason,
        grant_id=request.grant_id,
        turn_id=request.turn_id,
        step=request.step,
        result=request.result,
        audit=[
            AuditEvent(
                event=e.event,
                actor=e.actor,
                principal=e.principal,
                channel=e.channel,
                at=e.at,
                arguments_hash=e.arguments_hash,
                detail=e.detail,
            )
            for e in trail
        ],
    )


def _planned(reply: ChatResponse, plan: PlannedAction) -> ChatResponse:
    # Set after validation: both are plain strings the planner produced.
    reply.planner, reply.planner_error = plan.planner, plan.planner_error
    return reply


def ask_reply(request: ApprovalRequest, plan: PlannedAction, job_id: str) -> ChatResponse:
    if request.kind == "memory":
        text = "Authorization required to run a memory search. Please approve or deny in the UI."
        action = f"Memory authorization requested: {request.request_id}"
    else:
        text = (
            f"Authorization required to execute tool '{request.tool_name}'. "
            "Please approve or deny in the UI."
        )
        action = f"Tool authorization requested: {request.tool_name}"
    return _planned(
        ChatResponse(
            response=text,
            job_id=job_id,
            actions_taken=[action],
            issued_command=issued_command(request),
            raw_orchestrator_decision=plan.raw_decision,
            request_id=request.request_id,
        ),
        plan,
    )


def respond_reply(plan: PlannedAction, job_id: str) -> ChatResponse:
    builtin = plan.planner == "builtin"
    content = getattr(plan.action.details, "content", "")
    return _planned(
        ChatResponse(
            response=content,
            job_id=job_id,
            actions_taken=[
                "Direct response generated (builtin)" if builtin else "Direct response generated"
            ],
            raw_orchestrator_decision=plan.raw_decision if builtin else None,
        ),
        plan,
    )


def refused_reply(
    proposal: Proposal, reason: str, plan: PlannedAction, job_id: str
) -> ChatResponse:
    """A call that could never run (its schema, the twin's tool policy): no human is asked."""
    name = proposal.tool_name if proposal.kind == "tool" else "memory search"
    return _planned(
        ChatResponse(
            response=f"Tool '{name}' cannot run: {reason}.",
            job_id=job_id,
            actions_taken=["tool_refused_by_policy"],
            raw_orchestrator_decision=plan.raw_decision,
        ),
        plan,
    )


def policy_denied_reply(request: ApprovalRequest, reason: str, job_id: str) -> ChatResponse:
    if request.kind == "memory":
        text, action = "The memory search was not run", "Memory denied by policy"
    else:
        text, action = (
            f"Tool '{request.tool_name}' was not run",
            (f"Tool denied by policy: {request.tool_name}"),
        )
    return ChatResponse(
        response=f"{text}: {reason}.",
        job_id=job_id,
        actions_taken=[action],
        raw_orchestrator_decision=request.raw_decision,
        request_id=request.request_id,
    )


def limit_reply(job_id: str, steps: int, limit: int) -> ChatResponse:
    return ChatResponse(
        response=f"Stopped after {steps} steps: this twin's step limit ({limit}) was reached.",
        job_id=job_id,
        actions_taken=["agent_step_limit_reached"],
    )


def stopped_reply(job_id: str, why: str = "", code: str = "cancelled") -> ChatResponse:
    """The end of a turn that could not go on (the client left, the planner failed)."""
    return ChatResponse(
        response=f"The agent stopped: {why}" if why else "The agent stopped: the client left.",
        job_id=job_id,
        actions_taken=[f"agent_stopped: {code}"],
    )
