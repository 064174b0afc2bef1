"""Admitting a planned memory search or tool call: refuse it, park it for a human, or run it.

In order: the tool's arguments and the twin's tool policy (a call the tools
service would refuse is never shown to a human), then the twin's approval
policy (``deny`` / ``auto`` / ``ask``), then, for ``ask``, the session's grants.
The request is written in its final state with every audit line in one commit:
a policy denial can never be found pending after a crash, and an automatic
approval is ``approved`` (so a crash before the run is recovered by running it,
see ``runs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from phoenix_orchestrator.approvals import (
    ApprovalKind,
    ApprovalRequest,
    AuditEntry,
    patterns,
    policy,
)
from phoenix_orchestrator.approvals.db import Statement
from phoenix_orchestrator.approvals.grants import GrantStore, SessionGrant
from phoenix_orchestrator.approvals.store import audit_statement
from phoenix_orchestrator.ledger import Ledger
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_orchestrator.tool_checks import InvalidArguments, policy_refusal, validate_arguments

Mode = Literal["ask", "run", "denied", "refused"]


@dataclass(frozen=True)
class Proposal:
    """A planned call, before it is admitted."""

    request_id: str
    kind: ApprovalKind
    twin_id: str
    session_id: str
    namespace: str
    raw_decision: str
    planner: str
    turn_id: str | None
    step: int
    query: str | None = None
    tool_name: str | None = None
    arguments: dict[str, str] | None = None

    @property
    def policy_tool(self) -> str:
        return (self.tool_name or "") if self.kind == "tool" else "memory"

    @property
    def call_arguments(self) -> dict[str, str]:
        if self.kind == "tool":
            return dict(self.arguments or {})
        return {"query": self.query or ""}


@dataclass(frozen=True)
class Admission:
    """What became of a proposal: the request written (unless refused) and how it proceeds."""

    mode: Mode
    request: ApprovalRequest | None
    actor: str = ""
    channel: str = ""
    principal: str | None = None
    reason: str = ""


class Gate:
    """Turns proposals into approval requests, by the twin's policies and grants."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        ledger: Ledger,
        grants: GrantStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._grants = grants
        self._clock = clock

    def precheck(self, proposal: Proposal) -> str | None:
        """Why the call cannot run at all (schema, tool policy), or None."""
        if proposal.kind == "tool":
            try:
                validate_arguments(proposal.policy_tool, proposal.call_arguments)
            except InvalidArguments as err:
                return str(err)
            tool_policy = self._settings.tool_policy
            if tool_policy is not None:
                return policy_refusal(
                    tool_policy, proposal.twin_id, proposal.policy_tool, proposal.call_arguments
                )
        return None

    async def admit(self, proposal: Proposal, *also: Statement) -> Admission:
        """Write the request (with ``also``, e.g. its turn) and say how it proceeds."""
        refusal = self.precheck(proposal)
        if refusal is not None:
            return Admission("refused", None, reason=refusal)
        verdict = policy.evaluate(
            self._settings.approval_policy,
            proposal.policy_tool,
            proposal.call_arguments,
            default_timeout=self._settings.approval_ttl_seconds,
        )
        request = self._request(proposal, verdict)
        requested = self._ledger.entry(
            request, "requested", actor=proposal.planner, channel="planner",
            detail=f"step {proposal.step}; policy {verdict.label}",
        )  # fmt: skip
        if verdict.action == "deny":
            return await self._settle(
                request, requested, also, status="denied", actor="policy", channel="policy",
                outcome="denied_by_policy", mode="denied",
                reason=f"denied by the twin's approval policy ({verdict.rule})",
            )  # fmt: skip
        if verdict.action == "auto":
            return await self._settle(
                request, requested, also, status="approved", actor="policy", channel="policy",
                outcome="approved_by_policy", mode="run", reason=f"policy {verdict.rule}",
            )  # fmt: skip
        grant = await self._matching_grant(proposal)
        if grant is not None:
            return await self._settle(
                request, requested, (*also, GrantStore.used_statement(grant.grant_id)),
                status="approved", actor=f"grant:{grant.grant_id}", channel="grant",
                principal=grant.principal, outcome="approved_by_grant", mode="run",
                reason=f"session grant {grant.grant_id}", grant_id=grant.grant_id,
            )  # fmt: skip
        await self._ledger.add(request, requested, *also)
        return Admission("ask", request)

    def _request(self, proposal: Proposal, verdict: policy.Verdict) -> ApprovalRequest:
        now = self._clock()
        arguments = (proposal.arguments or {}) if proposal.kind == "tool" else {}
        return ApprovalRequest(
            request_id=proposal.request_id,
            kind=proposal.kind,
            twin_id=proposal.twin_id,
            session_id=proposal.session_id,
            namespace=proposal.namespace,
            query=proposal.query,
            tool_name=proposal.tool_name,
            arguments=arguments,
            arguments_hash=patterns.arguments_hash(
                proposal.kind, proposal.tool_name, proposal.call_arguments
            ),
            raw_decision=proposal.raw_decision,
            planner=proposal.planner,
            created_at=now,
            expires_at=now + timedelta(seconds=verdict.timeout_seconds),
            policy_rule=verdict.label,
            on_timeout=verdict.on_timeout,
            turn_id=proposal.turn_id,
            step=proposal.step,
        )

    async def _matching_grant(self, proposal: Proposal) -> SessionGrant | None:
        for grant in await self._grants.active(
            proposal.twin_id, proposal.session_id, proposal.policy_tool
        ):
            if patterns.grant_covers(
                grant.pattern,
                proposal.kind,
                proposal.policy_tool,
                proposal.call_arguments,
                proposal.namespace,
            ):
                return grant
        return None

    async def _settle(
        self,
        request: ApprovalRequest,
        requested: AuditEntry,
        also: Sequence[Statement],
        *,
        status: Literal["approved", "denied"],
        actor: str,
        channel: str,
        outcome: str,
        mode: Mode,
        reason: str,
        principal: str | None = None,
        grant_id: str | None = None,
    ) -> Admission:
        """Write the request already decided, with both audit lines, in one commit."""
        decided = request.model_copy(
            update={
                "status": status,
                "decided_by": actor,
                "decided_at": self._clock(),
                "principal": principal,
                "reason": reason,
                "grant_id": grant_id,
            }
        )
        decision = self._ledger.entry(
            decided, status, actor=actor, channel=channel, principal=principal, detail=reason
        )
        await self._ledger.store.add(decided, requested, audit_statement(decision), *also)
        self._ledger.committed(decided, requested, "requested")
        self._ledger.committed(decided, decision, outcome)
        return Admission(mode, decided, actor=actor, channel=channel, principal=principal,
                         reason=reason)  # fmt: skip
