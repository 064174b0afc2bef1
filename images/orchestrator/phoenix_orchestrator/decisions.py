"""Human decisions on approval requests: approve, approve edited, approve for the session, deny.

A chat message names a request the way the original UI does (a tool name, a
memory id); the typed API names it by id. Both end in ``decide``:

- the request must still be ``pending`` (else "already decided": duplicates and
  races are refused, never run twice) and not past its expiry (else its
  ``on_timeout`` applies and the late decision is refused);
- a decision may carry the ``arguments_hash`` it was made on: if the request's
  differs, the decision was made on a stale view and is refused;
- edited arguments are checked again (the tool's schema, the twin's tool policy,
  the approval policy: a ``deny`` rule cannot be approved around); the request
  keeps both versions and both hashes;
- ``scope: session`` also writes a session grant, in the same commit;
- a denial's reason is stored and becomes what the planner sees next.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from phoenix_orchestrator import execution
from phoenix_orchestrator.api import ChatRequest
from phoenix_orchestrator.approvals import ApprovalKind, ApprovalRequest, patterns, policy
from phoenix_orchestrator.approvals.db import Statement
from phoenix_orchestrator.approvals.grants import GrantStore, SessionGrant
from phoenix_orchestrator.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalMismatch,
    ApprovalStale,
    BadInput,
    EditRefused,
    NoPendingRequest,
)
from phoenix_orchestrator.execution import ObservedReply
from phoenix_orchestrator.ledger import Ledger
from phoenix_orchestrator.runs import Runs
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_orchestrator.tool_checks import InvalidArguments, policy_refusal, validate_arguments

Clock = Callable[[], datetime]
MAX_REASON_CHARS = 2_000


@dataclass(frozen=True)
class Decision:
    """What a human decided, and who they are."""

    approve: bool
    actor: str
    channel: str
    principal: str | None = None
    reason: str | None = None
    arguments: dict[str, str] | None = None
    scope: Literal["once", "session"] = "once"
    arguments_hash: str | None = None


def denial_observation(target: ApprovalRequest, decision: Decision) -> str | None:
    """What the planner is told of a denial: only one with a reason gives it anything to use."""
    if not decision.reason:
        return None
    return (
        f"Denied by {decision.principal or decision.actor}: the {target.subject} was not run. "
        f"Reason: {decision.reason}"
    )


class Decisions:
    """The approval state machine's human side."""

    def __init__(
        self,
        *,
        settings: OrchestratorSettings,
        ledger: Ledger,
        grants: GrantStore,
        runs: Runs,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._store = ledger.store
        self._grants = grants
        self._runs = runs
        self._clock = clock

    # -- what a chat message names ------------------------------------------------

    async def tool_by_name(
        self, request: ChatRequest, tool_name: str, actor: str
    ) -> ApprovalRequest:
        """The pending call of ``tool_name`` a ``[TOOL_EXECUTED]`` message approves."""
        pending = await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind="tool"
        )
        if not pending:
            self._ledger.count("tool", "not_found")
            raise NoPendingRequest(
                "No pending tool request found to execute.", actions_taken=["no_pending_tool"]
            )
        named = [p for p in pending if p.tool_name == tool_name]
        if not named:
            names = ", ".join(sorted({p.tool_name or "" for p in pending}))
            await self._mismatch(pending[0], actor, f"received '{tool_name}'")
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
        found = await self.own_request(request, memory_id, kind="memory")
        if found is not None:
            return found
        pending = await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind="memory"
        )
        if not pending:
            self._ledger.count("memory", "not_found")
            raise NoPendingRequest(
                "No pending memory request found to execute.",
                actions_taken=["no_pending_memory"],
            )
        await self._mismatch(pending[0], actor, f"received '{memory_id}'")
        ids = ", ".join(p.request_id for p in pending)
        raise ApprovalMismatch(
            f"Memory authorization mismatch: pending='{ids}' but received='{memory_id}'",
            actions_taken=["memory_authorization_mismatch"],
        )

    async def own_request(
        self, request: ChatRequest, request_id: str, *, kind: ApprovalKind | None = None
    ) -> ApprovalRequest | None:
        found = await self._store.get(request_id) if request_id else None
        if (
            found is not None
            and (kind is None or found.kind == kind)
            and found.session_id == request.session_id
            and found.twin_id == request.twin_id
        ):
            return found
        return None

    async def _mismatch(self, target: ApprovalRequest, actor: str, detail: str) -> None:
        entry = self._ledger.entry(target, "mismatch", actor=actor, channel="chat", detail=detail)
        await self._store.audit(entry)
        self._ledger.committed(target, entry, "mismatch")

    async def deny_all_pending(
        self, request: ChatRequest, kind: ApprovalKind, decision: Decision
    ) -> list[ApprovalRequest]:
        """Deny every pending request of the kind in the twin's session (the original's
        ``[TOOL_DENIED]`` cleared its one pending entry whatever the name; a denial never
        runs anything, so the broad reading is the safe one). Newest first."""
        denied: list[ApprovalRequest] = []
        now = self._clock()
        for target in await self._store.pending(
            request.session_id, twin_id=request.twin_id, kind=kind
        ):
            if target.expired(now):
                await self._runs.time_out(target)
            elif await self._move_decided(target, decision, "denied", outcome="denied"):
                denied.append(target)
        return denied

    # -- deciding one request ------------------------------------------------------

    async def decide(
        self, target: ApprovalRequest, decision: Decision, job_id: str
    ) -> ObservedReply:
        """Approve or deny ``target`` once; an approval runs it."""
        self._check_decidable(target, decision)
        if target.expired(self._clock()):
            await self._runs.time_out(target)
            raise ApprovalExpired(
                f"Approval request '{target.request_id}' ({target.subject}) expired at "
                f"{target.expires_at.isoformat()}; its timeout action ({target.on_timeout}) "
                "applied. Send the message again for a new request.",
                actions_taken=["approval_expired"],
            )
        if not decision.approve:
            if decision.scope == "session":
                raise BadInput("scope 'session' applies to approvals only, not to denials")
            await self._decided_or_raise(target, decision, "denied", outcome="denied")
            return ObservedReply(
                execution.denied(target, job_id), denial_observation(target, decision)
            )
        edited = self._edit(target, decision.arguments)
        approved = target.model_copy(update=edited)
        also: list[Statement] = []
        outcome = "approved_edited" if edited else "approved"
        if decision.scope == "session":
            grant = self._grant(approved, decision)
            also.append(GrantStore.insert_statement(grant))
            approved = approved.model_copy(update={"grant_id": grant.grant_id})
            edited = {**edited, "grant_id": grant.grant_id}
            outcome = "approved_for_session"
        await self._decided_or_raise(target, decision, "approved", outcome=outcome, also=also,
                                     **edited)  # fmt: skip
        outcome_ = await self._runs.execute(
            approved.model_copy(update={"status": "approved"}),
            actor=decision.actor,
            channel=decision.channel,
            principal=decision.principal,
            job_id=job_id,
        )
        outcome_.reply.grant_id = approved.grant_id
        return outcome_

    def _check_decidable(self, target: ApprovalRequest, decision: Decision) -> None:
        if target.status != "pending":
            self._ledger.count(target.kind, "duplicate")
            by = f" by {target.decided_by}" if target.decided_by else ""
            at = f" at {target.decided_at.isoformat()}" if target.decided_at else ""
            raise AlreadyDecided(
                f"Approval request '{target.request_id}' ({target.subject}) was already "
                f"{target.status}{by}{at}; a decision is taken once.",
                actions_taken=["approval_already_decided"],
            )
        if decision.arguments_hash is not None and decision.arguments_hash != target.arguments_hash:
            self._ledger.count(target.kind, "stale")
            raise ApprovalStale(
                f"Approval request '{target.request_id}' has arguments hash "
                f"{target.arguments_hash}, not {decision.arguments_hash}: the decision was made "
                "on a stale view. Reload the request and decide again.",
                actions_taken=["approval_stale"],
            )

    def _edit(self, target: ApprovalRequest, arguments: dict[str, str] | None) -> dict[str, object]:
        """The columns an edit sets (none when there is no edit), after checking the edit."""
        if arguments is None:
            return {}
        tool = target.policy_tool
        try:
            checked = validate_arguments(tool, arguments)
        except InvalidArguments as err:
            raise BadInput(
                f"Edited arguments refused: {err}", actions_taken=["edit_invalid"]
            ) from None
        if checked == target.effective_arguments:
            return {}
        refusal = None
        tool_policy = self._settings.tool_policy
        if target.kind == "tool" and tool_policy is not None:
            refusal = policy_refusal(tool_policy, target.twin_id, tool, checked)
        verdict = policy.evaluate(
            self._settings.approval_policy, tool, checked,
            default_timeout=self._settings.approval_ttl_seconds,
        )  # fmt: skip
        if refusal is None and verdict.action == "deny":
            refusal = f"the twin's approval policy denies it ({verdict.rule})"
        if refusal is not None:
            self._ledger.count(target.kind, "edit_refused")
            raise EditRefused(
                f"Edited call refused: {refusal}. The request stays pending.",
                actions_taken=["edit_refused"],
            )
        return {
            "approved_arguments": checked,
            "approved_hash": patterns.arguments_hash(target.kind, target.tool_name, checked),
        }

    def _grant(self, approved: ApprovalRequest, decision: Decision) -> SessionGrant:
        tool = approved.policy_tool
        return SessionGrant(
            grant_id=str(uuid.uuid4()),
            twin_id=approved.twin_id,
            session_id=approved.session_id,
            tool=tool,
            pattern=patterns.grant_pattern(
                approved.kind, tool, approved.effective_arguments, approved.namespace
            ),
            created_by=decision.actor,
            principal=decision.principal,
            created_at=self._clock(),
            source_request_id=approved.request_id,
        )

    async def _decided_or_raise(
        self,
        target: ApprovalRequest,
        decision: Decision,
        status: Literal["approved", "denied"],
        *,
        outcome: str,
        also: list[Statement] | None = None,
        **columns: object,
    ) -> None:
        if not await self._move_decided(target, decision, status, outcome=outcome, also=also,
                                        **columns):  # fmt: skip
            self._ledger.count(target.kind, "duplicate")
            raise AlreadyDecided(
                f"Approval request '{target.request_id}' ({target.subject}) was decided by "
                "someone else a moment ago; a decision is taken once.",
                actions_taken=["approval_already_decided"],
            )

    async def _move_decided(
        self,
        target: ApprovalRequest,
        decision: Decision,
        status: Literal["approved", "denied"],
        *,
        outcome: str,
        also: list[Statement] | None = None,
        **columns: object,
    ) -> bool:
        details = []
        approved_hash = columns.get("approved_hash")
        if isinstance(approved_hash, str):
            details.append(f"edited: arguments {target.arguments_hash} -> {approved_hash}")
        if "grant_id" in columns:
            details.append(f"session grant {columns['grant_id']}")
        if decision.reason:
            details.append("with a reason")
        return await self._ledger.move(
            target, "pending", status, event=status, actor=decision.actor,
            channel=decision.channel, principal=decision.principal, detail="; ".join(details),
            outcome=outcome, also=also or (),
            columns={
                "decided_by": decision.actor, "decided_at": self._clock(),
                "principal": decision.principal, "reason": decision.reason, **columns,
            },
        )  # fmt: skip
