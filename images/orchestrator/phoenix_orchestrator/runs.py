"""Running approved requests exactly once, across races, timeouts and ``kill -9``.

The argument, in the order things happen to one request:

1. A decision is a compare-and-set ``pending -> approved`` committed with its
   audit line (``ledger.move``): of any number of racing deciders exactly one
   wins; the others get "already decided".
2. Right before the gRPC call, a second commit claims it ``approved -> running``.
   Only the claimer calls memory or tools.
3. The result is committed ``running -> executed|failed`` with its audit line.
   UNAVAILABLE means nothing ran: ``running -> pending``, approvable again.
   (For a tool run ``backends`` raises it only when no request went out or
   the service itself answered UNAVAILABLE; a lost connection after sending
   is a failure.)

A process killed between 1 and 2 leaves ``approved``: nothing ran, so the next
start runs it (``recover``), through the same claim. A process killed between 2
and 3 leaves ``running``: the call may or may not have happened, so the next
start marks it ``interrupted`` and never runs it again. Nothing is ever run
twice; the one case that can end with "not run" is reported as such, never as
success. (The tools service receives the request id in the call's metadata, so
a duplicate could also be refused there; it does not keep one today.)

Timeouts: a ``pending`` request past its expiry is resolved by its
``on_timeout``: ``deny`` -> ``expired``, ``approve`` -> ``approved`` by
``timeout`` and run in the background. The sweep runs periodically while the
orchestrator runs (``sweep_forever``) and also whenever a caller touches an
overdue request first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from phoenix_orchestrator.approvals import ApprovalRequest
from phoenix_orchestrator.errors import AlreadyDecided, BackendUnavailable, ReplyError
from phoenix_orchestrator.execution import Executor, ObservedReply
from phoenix_orchestrator.ledger import Ledger

logger = logging.getLogger(__name__)

# Called with a background run's request and observation (None when it failed).
Finished = Callable[[ApprovalRequest, str | None], Awaitable[None]]


class Runs:
    """Claims, runs and records approved requests; runs timeouts and recovered work detached."""

    def __init__(self, ledger: Ledger, executor: Executor) -> None:
        self._ledger = ledger
        self._executor = executor
        self._background: set[asyncio.Task[None]] = set()
        self.on_background_result: Finished | None = None

    async def execute(
        self,
        target: ApprovalRequest,
        *,
        actor: str,
        channel: str,
        principal: str | None,
        job_id: str,
    ) -> ObservedReply:
        """Claim ``target`` (approved), run it, record the result; the claim makes it once."""
        if not await self._ledger.move(
            target, "approved", "running", event="started", actor=actor, channel=channel,
            principal=principal, arguments_hash=target.approved_hash or target.arguments_hash,
        ):  # fmt: skip
            raise AlreadyDecided(
                f"Approval request '{target.request_id}' ({target.subject}) is already running "
                "or finished; it is not run again.",
                actions_taken=["approval_already_decided"],
            )
        try:
            outcome = await self._executor.run(target, actor=actor, job_id=job_id)
        except BackendUnavailable:
            await self._ledger.move(
                target, "running", "pending", event="returned_to_pending", actor=actor,
                channel=channel, detail="dependency unavailable; nothing ran",
            )  # fmt: skip
            raise
        except ReplyError as err:
            await self._ledger.move(
                target, "running", "failed", event="failed", actor=actor, channel=channel,
                detail=err.code, outcome="failed", columns={"result": str(err)},
            )  # fmt: skip
            raise
        except Exception as err:
            await self._ledger.move(
                target, "running", "failed", event="failed", actor=actor, channel=channel,
                detail=type(err).__name__, outcome="failed",
            )  # fmt: skip
            raise
        detail = ""
        if outcome.reply.tool_result is not None:
            detail = f"exit_code={outcome.reply.tool_result.exit_code}"
        elif outcome.reply.source_memories is not None:
            detail = f"results={len(outcome.reply.source_memories)}"
        await self._ledger.move(
            target, "running", "executed", event="executed", actor=actor, channel=channel,
            detail=detail, outcome="executed", columns={"result": outcome.reply.response},
        )  # fmt: skip
        return outcome

    # -- in the background ---------------------------------------------------------

    def spawn(self, target: ApprovalRequest, *, actor: str, channel: str) -> None:
        """Run an approved request with no caller waiting (a timeout approval, a recovery)."""
        task = asyncio.create_task(self._detached(target, actor=actor, channel=channel))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _detached(self, target: ApprovalRequest, *, actor: str, channel: str) -> None:
        observation: str | None = None
        try:
            outcome = await self.execute(
                target, actor=actor, channel=channel, principal=None, job_id=str(uuid.uuid4())
            )
            observation = outcome.observation
        except ReplyError as err:
            logger.warning(
                "background approval run failed",
                extra={"request_id": target.request_id, "code": err.code},
            )
        except Exception:
            logger.exception("background approval run crashed", extra={"id": target.request_id})
        if self.on_background_result is not None:
            await self.on_background_result(target, observation)

    async def drain(self, seconds: float) -> None:
        """Wait for background runs (at shutdown); what is still running is left to recovery."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=seconds)

    # -- recovery and timeouts ---------------------------------------------------------

    async def recover(self) -> None:
        """At startup: finish what a killed process left (see the module docstring)."""
        for running in await self._ledger.store.in_status("running"):
            await self._ledger.move(
                running, "running", "interrupted", event="interrupted", actor="orchestrator",
                channel="recovery", outcome="interrupted",
                detail="the orchestrator stopped while this ran; it is not run again",
            )  # fmt: skip
        for approved in await self._ledger.store.in_status("approved"):
            self.spawn(approved, actor=approved.decided_by or "orchestrator", channel="recovery")

    async def time_out(self, target: ApprovalRequest) -> bool:
        """Resolve an overdue pending request by its ``on_timeout``; False if someone else did."""
        if target.on_timeout == "approve":
            moved = await self._ledger.move(
                target, "pending", "approved", event="approved", actor="timeout",
                channel="sweep", detail="onTimeout: approve", outcome="approved_on_timeout",
                columns={"decided_by": "timeout", "decided_at": target.expires_at},
            )  # fmt: skip
            if moved:
                self.spawn(target.model_copy(update={"status": "approved"}), actor="timeout",
                           channel="sweep")  # fmt: skip
            return moved
        return await self._ledger.move(
            target, "pending", "expired", event="expired", actor="timeout", channel="sweep",
            detail="onTimeout: deny", outcome="expired",
        )  # fmt: skip
