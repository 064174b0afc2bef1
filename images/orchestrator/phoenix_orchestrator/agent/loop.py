"""The bounded agent loop: plan, act, observe, until an answer, a human, or the step limit.

A turn starts with a user message. Each step asks the planner for one action:

- an answer ends the turn;
- a memory search or tool call goes through the ``gate``: refused (it could
  never run), parked for a human (the turn pauses; ``resume`` continues it when
  the decision arrives, in another request, perhaps after a restart), or run at
  once (``auto`` policy, a session grant) or denied by policy, after which the
  planner sees the result or the denial and the loop goes on.

A turn takes at most ``AGENT_MAX_STEPS`` planner steps (``spec.orchestrator.maxSteps``);
reaching the limit ends it with a reply saying so. Every step is audited with
its number (``approvals``), counted (``phoenix_orchestrator_agent_steps_total``)
and, with tracing on, is a span ``agent step`` carrying its number and outcome.

A streaming caller may stop a turn (``TurnControl``): only planning is cancelled;
a run in progress always finishes and is recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TypeVar

from opentelemetry import trace

from phoenix_orchestrator.actions import SUPPORTED_TOOLS, ActionMemory, ActionTool
from phoenix_orchestrator.agent.replies import Replies, Sink
from phoenix_orchestrator.agent.turns import Step, Turn, TurnStore
from phoenix_orchestrator.api import ChatRequest, ChatResponse
from phoenix_orchestrator.chat_replies import (
    ask_reply,
    limit_reply,
    policy_denied_reply,
    refused_reply,
    respond_reply,
    stopped_reply,
)
from phoenix_orchestrator.errors import PlanningUnavailable, ReplyError
from phoenix_orchestrator.execution import ObservedReply
from phoenix_orchestrator.gate import Gate, Proposal
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning import LLMPlanningError, PlannedAction
from phoenix_orchestrator.planning.planner import Planner
from phoenix_orchestrator.runs import Runs
from phoenix_orchestrator.tool_args import missing_args

tracer = trace.get_tracer("phoenix_orchestrator.agent")
T = TypeVar("T")
DEFAULT_NAMESPACE = "default"


def _step_span(number: int) -> AbstractContextManager[trace.Span]:
    """The step's span, a child of the request's; none when the request is not traced.

    A child of a span that does not record would not record either (parent-based
    sampling), and making one anyway cost an untraced chat message a twelfth of
    its CPU in the orchestrator (bench/chat_profile.py).
    """
    if not trace.get_current_span().is_recording():
        return nullcontext(trace.INVALID_SPAN)
    return tracer.start_as_current_span("agent step", attributes={"phoenix.agent.step": number})


class TurnCancelled(Exception):
    """The caller went away; the turn stops before its next planning step."""


class TurnControl:
    """Lets a streaming caller stop a turn's planning (never a run in progress).

    A turn nobody can stop (a whole reply: its caller holds no control) plans
    in the request's own task; a cancellable one plans in a task of its own,
    which ``cancel`` cancels. That task costs the hot path a task and a loop
    step per message (bench/chat_profile.py), so only streams pay for it.
    """

    def __init__(self, *, cancellable: bool = True) -> None:
        self.cancelled = False
        self._cancellable = cancellable
        self._planning: asyncio.Future[object] | None = None

    async def planning(self, work: Awaitable[T]) -> T:
        if self.cancelled:
            raise TurnCancelled
        if not self._cancellable:
            return await work
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        self._planning = task  # type: ignore[assignment]
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.cancelled and (current is None or not current.cancelling()):
                raise TurnCancelled from None
            raise
        finally:
            self._planning = None

    def cancel(self) -> None:
        if not self._cancellable:
            raise RuntimeError("this turn's caller cannot stop it")
        self.cancelled = True
        if self._planning is not None:
            self._planning.cancel()


class AgentLoop:
    """Runs turns; the only caller of the planner."""

    def __init__(
        self,
        *,
        planner: Planner,
        gate: Gate,
        runs: Runs,
        turns: TurnStore,
        metrics: Metrics,
        clock: Callable[[], datetime],
        max_steps: int,
    ) -> None:
        self._planner = planner
        self._gate = gate
        self._runs = runs
        self._turns = turns
        self._metrics = metrics
        self._clock = clock
        self._max_steps = max_steps

    async def start(
        self, request: ChatRequest, job_id: str, sink: Sink | None, control: TurnControl
    ) -> ChatResponse:
        now = self._clock()
        turn = Turn(
            turn_id=str(uuid.uuid4()),
            twin_id=request.twin_id,
            session_id=request.session_id,
            namespace=request.namespace or DEFAULT_NAMESPACE,
            message=request.message,
            created_at=now,
            updated_at=now,
        )
        return await self._advance(turn, Replies(sink), job_id, control, persisted=False)

    async def resume(
        self,
        turn_id: str | None,
        request_id: str,
        outcome: ObservedReply,
        *,
        job_id: str,
        sink: Sink | None,
        control: TurnControl,
    ) -> ChatResponse:
        """Continue the turn a decided request paused, now that its outcome is known."""
        replies = Replies(sink)
        await replies.add(outcome.reply)
        turn = await self._turns.get(turn_id) if turn_id else None
        if turn is None or turn.status != "open":
            return replies.build(turn_id=None, steps=None)
        if outcome.observation is None:  # a denial without a reason: nothing to learn from
            await self._turns.save(turn.finished(self._clock()))
            return replies.build(turn_id=turn.turn_id, steps=turn.step_count)
        turn = turn.observed(request_id, outcome.observation, self._clock())
        return await self._advance(turn, replies, job_id, control, persisted=True)

    async def observe_background(self, turn_id: str | None, request_id: str, text: str) -> None:
        """A run nobody waited for (a timeout approval): recorded, and the turn ends there."""
        turn = await self._turns.get(turn_id) if turn_id else None
        if turn is not None and turn.status == "open":
            now = self._clock()
            await self._turns.save(turn.observed(request_id, text, now).finished(now))

    async def _advance(
        self, turn: Turn, replies: Replies, job_id: str, control: TurnControl, *, persisted: bool
    ) -> ChatResponse:
        finished = True
        try:
            while True:
                if turn.steps and turn.step_count >= self._max_steps:
                    self._metrics.agent_steps.labels(outcome="limit").inc()
                    await replies.add(limit_reply(job_id, turn.step_count, self._max_steps))
                    break
                plan = await self._plan(turn, replies, control)
                if plan is None:
                    break
                turn, persisted, done = await self._step(turn, plan, replies, job_id)
                if done == "pause":
                    finished = False
                    break
                if done == "end":
                    break
        except TurnCancelled:
            self._metrics.agent_steps.labels(outcome="cancelled").inc()
            if replies.empty:
                await replies.add(stopped_reply(job_id))
        except ReplyError as err:
            if replies.empty:
                raise
            await replies.add(stopped_reply(job_id, str(err), err.code))
        if persisted:
            await self._turns.save(turn.finished(self._clock()) if finished else turn)
        return replies.build(turn_id=turn.turn_id if persisted else None, steps=turn.step_count)

    async def _plan(
        self, turn: Turn, replies: Replies, control: TurnControl
    ) -> PlannedAction | None:
        today = self._clock().astimezone().date()
        try:
            plan = await control.planning(self._planner.next(turn, today, replies.stream))
        except LLMPlanningError as err:
            raise PlanningUnavailable(
                f"Orchestrator LLM planning failed: {err}", actions_taken=["llm_planning_failed"]
            ) from None
        if plan is not None and plan.planner == "deterministic-fallback" and not turn.steps:
            replies.actions_prefix.append(
                f"llm_planning_failed: deterministic planner used ({plan.planner_error})"
            )
        return plan

    async def _step(
        self, turn: Turn, plan: PlannedAction, replies: Replies, job_id: str
    ) -> tuple[Turn, bool, str]:
        """Act on one plan: (the turn now, whether it is stored, "next"|"pause"|"end")."""
        number = turn.step_count + 1
        action = plan.action
        with _step_span(number) as span:
            if not isinstance(action, ActionMemory | ActionTool):
                self._metrics.agent_steps.labels(outcome="respond").inc()
                span.set_attribute("phoenix.agent.outcome", "respond")
                await replies.add(respond_reply(plan, job_id))
                persisted = bool(turn.steps)
                return turn.with_step(Step(step=number, action=plan.raw_decision),
                                      self._clock()), persisted, "end"  # fmt: skip
            proposal = self._proposal(turn, plan, number)
            problem = self._unplannable(proposal, plan, job_id)
            if problem is not None:
                self._metrics.agent_steps.labels(outcome="refuse").inc()
                await replies.add(problem)
                return turn, bool(turn.steps), "end"
            request_id = proposal.request_id
            turn = turn.with_step(
                Step(step=number, action=plan.raw_decision, request_id=request_id), self._clock()
            )
            admission = await self._gate.admit(proposal, TurnStore.save_statement(turn))
            span.set_attribute("phoenix.agent.outcome", admission.mode)
            self._metrics.agent_steps.labels(outcome=admission.mode).inc()
            if admission.mode == "refused" or admission.request is None:
                await replies.add(refused_reply(proposal, admission.reason, plan, job_id))
                return turn, bool(turn.steps[:-1]), "end"
            target = admission.request
            if admission.mode == "ask":
                await replies.add(ask_reply(target, plan, job_id))
                return turn, True, "pause"
            if admission.mode == "denied":
                observation = (
                    f"Denied by the twin's approval policy: the {target.subject} was not run "
                    f"({admission.reason})."
                )
                await replies.add(policy_denied_reply(target, admission.reason, job_id))
            else:
                outcome = await self._runs.execute(
                    target, actor=admission.actor, channel=admission.channel,
                    principal=admission.principal, job_id=job_id,
                )  # fmt: skip
                await replies.add(outcome.reply)
                observation = outcome.observation or ""
            return turn.observed(target.request_id, observation, self._clock()), True, "next"

    def _proposal(self, turn: Turn, plan: PlannedAction, number: int) -> Proposal:
        action = plan.action
        common = {
            "request_id": str(uuid.uuid4()),
            "twin_id": turn.twin_id,
            "session_id": turn.session_id,
            "namespace": turn.namespace,
            "raw_decision": plan.raw_decision,
            "planner": plan.planner,
            "turn_id": turn.turn_id,
            "step": number,
        }
        if isinstance(action, ActionMemory):
            return Proposal(kind="memory", query=action.details.query, **common)  # type: ignore[arg-type]
        if not isinstance(action, ActionTool):  # an answer is never a proposal
            raise TypeError(f"{action.action_type} is not a memory search or a tool call")
        return Proposal(
            kind="tool",
            tool_name=action.details.tool_name,
            arguments=dict(action.details.args),
            **common,  # type: ignore[arg-type]
        )

    @staticmethod
    def _unplannable(proposal: Proposal, plan: PlannedAction, job_id: str) -> ChatResponse | None:
        """The original's replies to a tool it does not know or one missing its arguments."""
        if proposal.kind != "tool":
            return None
        tool = proposal.tool_name or ""
        if tool not in SUPPORTED_TOOLS:
            return ChatResponse(
                response=f"Tool '{tool}' is not available. "
                f"Supported tools: {', '.join(SUPPORTED_TOOLS)}.",
                job_id=job_id,
                actions_taken=["unsupported_tool_requested"],
                raw_orchestrator_decision=plan.raw_decision,
            )
        missing = missing_args(tool, proposal.arguments or {})
        if missing:
            return ChatResponse(
                response=f"Tool '{tool}' was planned without the argument(s) it needs: "
                f"{', '.join(missing)}. Please rephrase the request.",
                job_id=job_id,
                actions_taken=["incomplete_tool_arguments"],
                raw_orchestrator_decision=plan.raw_decision,
            )
        return None
