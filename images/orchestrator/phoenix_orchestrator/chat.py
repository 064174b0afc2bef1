"""The orchestrator's one service object: chat turns, decisions, the audit query, grants.

Routes call this and nothing else. A chat message either starts an agent turn
(``agent.loop``) or carries a decision the original UI's way (``approvals.messages``);
the typed API decides by request id. Either way the decision goes through
``decisions`` and the paused turn continues. Nothing reaches memory or tools
without an approved request (``runs`` is the only caller of ``execution``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from datetime import timedelta

from phoenix_orchestrator import execution
from phoenix_orchestrator.agent.loop import AgentLoop, TurnControl
from phoenix_orchestrator.agent.replies import Sink
from phoenix_orchestrator.agent.turns import TurnStore
from phoenix_orchestrator.api import (
    ApprovalDecision,
    ApprovalRecord,
    ChatRequest,
    ChatResponse,
    GrantView,
    PendingApprovals,
)
from phoenix_orchestrator.approvals import STATUSES, ApprovalRequest, ApprovalStatus, messages
from phoenix_orchestrator.approvals.db import Database
from phoenix_orchestrator.approvals.grants import GrantStore, SessionGrant
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.chat_replies import pending_view, record_view
from phoenix_orchestrator.decisions import Clock, Decision, Decisions, denial_observation
from phoenix_orchestrator.errors import BadInput, GrantNotFound, NoPendingRequest
from phoenix_orchestrator.execution import Executor, ObservedReply
from phoenix_orchestrator.gate import Gate
from phoenix_orchestrator.ledger import Ledger
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning.planner import Planner
from phoenix_orchestrator.runs import Runs
from phoenix_orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)


class ChatService:
    """Plans messages, keeps approval requests, executes what was approved."""

    def __init__(
        self,
        *,
        settings: OrchestratorSettings,
        planner: Planner,
        db: Database,
        executor: Executor,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self.store = ApprovalStore(db)
        self.grants = GrantStore(db)
        self.turns = TurnStore(db)
        self._ledger = Ledger(self.store, metrics, clock)
        self.runs = Runs(self._ledger, executor)
        self.decisions = Decisions(
            settings=settings, ledger=self._ledger, grants=self.grants, runs=self.runs, clock=clock
        )
        self.loop = AgentLoop(
            planner=planner,
            gate=Gate(settings, self._ledger, self.grants, clock),
            runs=self.runs,
            turns=self.turns,
            metrics=metrics,
            clock=clock,
            max_steps=settings.agent_max_steps,
        )
        self.runs.on_background_result = self._background_result

    # -- /chat ------------------------------------------------------------------

    async def chat(
        self,
        request: ChatRequest,
        *,
        actor: str,
        principal: str | None = None,
        sink: Sink | None = None,
        control: TurnControl | None = None,
    ) -> ChatResponse:
        job_id = str(uuid.uuid4())
        control = control or TurnControl(cancellable=False)
        parsed = messages.parse(request.message)
        if parsed is None:
            return await self.loop.start(request, job_id, sink, control)
        if parsed.kind == "config":
            return ChatResponse(
                response="There is no pending configuration request; this orchestrator does "
                "not ask for configuration, so the reply was not used.",
                job_id=job_id,
                actions_taken=["config_response_ignored"],
            )
        decision = Decision(
            approve=parsed.approve,
            actor=actor,
            channel="chat",
            principal=principal,
            reason=parsed.reason,
        )
        if not parsed.approve:
            return await self._deny_by_message(
                request, parsed.kind, parsed.subject, decision, job_id=job_id, sink=sink,
                control=control,
            )  # fmt: skip
        if parsed.kind == "tool":
            target = await self.decisions.tool_by_name(request, parsed.subject, actor)
        else:
            target = await self.decisions.memory_by_id(request, parsed.subject, actor)
        outcome = await self.decisions.decide(target, decision, job_id)
        return await self.loop.resume(
            target.turn_id, target.request_id, outcome, job_id=job_id, sink=sink, control=control
        )

    async def _deny_by_message(
        self,
        request: ChatRequest,
        kind: str,
        subject: str,
        decision: Decision,
        *,
        job_id: str,
        sink: Sink | None,
        control: TurnControl,
    ) -> ChatResponse:
        """``[TOOL_DENIED]`` / ``[MEMORY_DENIED]``: nothing named runs, whatever was pending.

        A memory id naming a request of this session denies exactly that one;
        otherwise every pending request of the kind in the twin's session is denied.
        The reply keeps the original's wording, also when nothing was pending.
        """
        if kind == "memory":
            named = await self.decisions.own_request(request, subject, kind="memory")
            if named is not None:
                outcome = await self.decisions.decide(named, decision, job_id)
                return await self.loop.resume(
                    named.turn_id, named.request_id, outcome, job_id=job_id, sink=sink,
                    control=control,
                )  # fmt: skip
        denied = await self.decisions.deny_all_pending(
            request, "tool" if kind == "tool" else "memory", decision
        )
        newest = denied[0] if denied else None
        if kind == "tool":
            name = subject or (newest.tool_name or "" if newest else "")
            reply = execution.tool_denied(name, job_id, newest)
        else:
            reply = execution.memory_denied(subject, job_id, newest)
        for other in denied[1:]:
            await self.loop.resume(
                other.turn_id, other.request_id, ObservedReply(reply, None), job_id=job_id,
                sink=None, control=control,
            )  # fmt: skip
        if newest is None:
            return reply
        observation = denial_observation(newest, decision)
        return await self.loop.resume(
            newest.turn_id, newest.request_id, ObservedReply(reply, observation), job_id=job_id,
            sink=sink, control=control,
        )  # fmt: skip

    # -- the approvals API -------------------------------------------------------

    async def decide_by_id(
        self,
        request_id: str,
        body: ApprovalDecision,
        *,
        approve: bool,
        actor: str,
        principal: str | None,
        sink: Sink | None = None,
        control: TurnControl | None = None,
    ) -> ChatResponse:
        found = await self._owned(request_id, body.session_id, body.twin_id)
        if not approve and (body.arguments is not None or body.scope != "once"):
            raise BadInput("arguments and scope apply to approvals only, not to denials")
        if approve and body.reason is not None:
            raise BadInput("reason applies to denials only")
        decision = Decision(
            approve=approve,
            actor=actor,
            channel="api",
            principal=principal,
            reason=body.reason,
            arguments=body.arguments,
            scope=body.scope,
            arguments_hash=body.arguments_hash,
        )
        job_id = str(uuid.uuid4())
        outcome = await self.decisions.decide(found, decision, job_id)
        return await self.loop.resume(
            found.turn_id, found.request_id, outcome, job_id=job_id, sink=sink,
            control=control or TurnControl(cancellable=False),
        )  # fmt: skip

    async def _owned(
        self, request_id: str, session_id: str | None, twin_id: str | None
    ) -> ApprovalRequest:
        """The request, if it belongs to the session and twin named; else not found (a request
        of another twin is answered exactly like an unknown id)."""
        found = await self.store.get(request_id)
        if (
            found is None
            or (session_id is not None and found.session_id != session_id)
            or (twin_id is not None and found.twin_id != twin_id)
        ):
            self._ledger.count("unknown", "not_found")
            where = f" in session '{session_id}'" if session_id else ""
            raise NoPendingRequest(
                f"No approval request '{request_id}'{where} for this twin.",
                actions_taken=["approval_not_found"],
            )
        return found

    async def page(
        self,
        *,
        session_id: str | None,
        twin_id: str | None,
        state: str,
        limit: int,
        page_token: str | None,
    ) -> PendingApprovals:
        """The audit query: requests in ``state``, newest first, a page at a time."""
        if session_id is None and twin_id is None:
            raise BadInput("name the twin_id or the session_id whose approvals to list")
        statuses: tuple[ApprovalStatus, ...] | None
        if state == "all":
            statuses = None
        elif state == "decided":
            statuses = tuple(s for s in STATUSES if s != "pending")
        else:
            statuses = (state,)  # type: ignore[assignment]
        before = _decode_token(page_token)
        found, more = await self.store.page(
            twin_id=twin_id, session_id=session_id, statuses=statuses, limit=limit, before=before
        )
        now = self._clock()
        if state == "pending":  # live ones only, as the UI lists them
            found = [p for p in found if not p.expired(now)]
        trails = await self.store.audit_trails([r.request_id for r in found])
        return PendingApprovals(
            session_id=session_id,
            twin_id=twin_id,
            state=state,
            pending=[pending_view(p) for p in found] if state == "pending" else [],
            items=[record_view(r, trails[r.request_id]) for r in found],
            next_page_token=_encode_token(more) if more is not None else None,
        )

    async def record(self, request_id: str, twin_id: str | None) -> ApprovalRecord:
        found = await self._owned(request_id, None, twin_id)
        return record_view(found, await self.store.audit_trail(request_id))

    async def grants_of(
        self, session_id: str, twin_id: str | None, *, include_revoked: bool
    ) -> list[GrantView]:
        found = await self.grants.of_session(session_id, twin_id, include_revoked=include_revoked)
        return [grant_view(g) for g in found]

    async def revoke_grant(
        self, grant_id: str, *, session_id: str, twin_id: str | None, actor: str
    ) -> GrantView:
        grant = await self.grants.get(grant_id)
        if (
            grant is None
            or grant.session_id != session_id
            or (twin_id is not None and grant.twin_id != twin_id)
        ):
            raise GrantNotFound(
                f"No session grant '{grant_id}' in session '{session_id}' for this twin.",
                actions_taken=["grant_not_found"],
            )
        now = self._clock()
        if grant.active:
            await self.grants.db.transaction(
                [self.grants.revoke_statement(grant_id, by=actor, at=now)]
            )
            logger.info(
                "session grant revoked",
                extra={"grant_id": grant_id, "twin_id": grant.twin_id, "actor": actor},
            )
        revoked = await self.grants.get(grant_id)
        if revoked is None:  # grants are never deleted, and this process is their only writer
            raise RuntimeError(f"grant {grant_id} vanished while being revoked")
        return grant_view(revoked)

    # -- background work -----------------------------------------------------------

    async def start(self) -> None:
        """At startup: finish what a killed process left, expire what is overdue, prune."""
        await self.runs.recover()
        await self.sweep()
        retention = timedelta(days=self._settings.approval_retention_days)
        if retention:
            removed = await self.store.prune(self._clock() - retention)
            if removed:
                logger.info("approval history pruned", extra={"rows": removed})

    async def sweep(self) -> int:
        """Resolve every overdue pending request by its ``on_timeout``; how many were."""
        resolved = 0
        for overdue in await self.store.overdue(self._clock()):
            resolved += await self.runs.time_out(overdue)
        return resolved

    async def sweep_forever(self) -> None:
        interval = self._settings.approval_sweep_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # a failed sweep must not end sweeping; the next one retries
                logger.exception("approval sweep failed")

    async def _background_result(self, target: ApprovalRequest, observation: str | None) -> None:
        text = observation or "The run failed; see the approval's audit trail."
        await self.loop.observe_background(target.turn_id, target.request_id, text)


def grant_view(grant: SessionGrant) -> GrantView:
    return GrantView(
        grant_id=grant.grant_id,
        twin_id=grant.twin_id,
        session_id=grant.session_id,
        tool=grant.tool,
        covers=grant.pattern.describe(),
        pattern=grant.pattern.model_dump(),
        created_by=grant.created_by,
        principal=grant.principal,
        created_at=grant.created_at,
        source_request_id=grant.source_request_id,
        revoked_at=grant.revoked_at,
        revoked_by=grant.revoked_by,
        uses=grant.uses,
    )


def _encode_token(rowid: int) -> str:
    return base64.urlsafe_b64encode(f"r{rowid}".encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("r") or not text[1:].isdigit():
            raise ValueError(text)
        return int(text[1:])
    except ValueError:
        raise BadInput(f"page_token {token!r} is not a token this API issued") from None
