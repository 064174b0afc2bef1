"""Chooses who decides: the built-in date reply, then the LLM or the deterministic rules.

``next`` is the agent loop's question: given a turn's steps so far, what now?
The first step is ``plan``'s; after that the LLM sees the whole turn, and the
deterministic planner continues its scripts (or stops: the result answers).

When the LLM fails and ``LLM_FALLBACK_TO_DETERMINISTIC`` is on, the
deterministic planner answers and the ``PlannedAction`` says so (planner
``deterministic-fallback`` plus the error); the fallback is counted. With
fallback off, the failure reaches the caller as ``LLMPlanningError``.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from phoenix_orchestrator.actions import dump_action
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning import Action, LLMPlanningError, PlannedAction, deterministic

if TYPE_CHECKING:
    from phoenix_orchestrator.agent.turns import Turn
    from phoenix_orchestrator.planning.llm import LLMPlanner, Sink

logger = logging.getLogger(__name__)


class Planner:
    """Turns a message into a ``PlannedAction``."""

    def __init__(self, llm: LLMPlanner | None, *, fallback: bool, metrics: Metrics) -> None:
        self._llm = llm
        self._fallback = fallback
        self._metrics = metrics
        self._decisions: dict[tuple[str, str], Any] = {}

    async def plan(
        self, message: str, twin_id: str, today: date, sink: Sink | None = None
    ) -> PlannedAction:
        builtin = deterministic.builtin_reply(message, today)
        if builtin is not None:
            return self._counted(PlannedAction(builtin, dump_action(builtin), "builtin"))
        if self._llm is None:
            action = deterministic.plan(message)
            return self._counted(PlannedAction(action, dump_action(action), "deterministic"))
        try:
            action, raw = await self._llm.decide(message, twin_id, sink=sink)
        except LLMPlanningError as err:
            self._metrics.llm_requests.labels(outcome=err.reason).inc()
            if not self._fallback:
                raise
            self._metrics.llm_fallbacks.labels(reason=err.reason).inc()
            logger.warning(
                "llm planning failed; deterministic planner answers instead",
                extra={"twin_id": twin_id, "reason": err.reason, "error": str(err)},
            )
            action = deterministic.plan(message)
            return self._counted(
                PlannedAction(
                    action, dump_action(action), "deterministic-fallback", planner_error=str(err)
                )
            )
        self._metrics.llm_requests.labels(outcome="ok").inc()
        return self._counted(PlannedAction(action, raw, "llm"))

    def _counted(self, plan: PlannedAction) -> PlannedAction:
        key = (plan.action.action_type, plan.planner)  # a handful of fixed combinations
        counter = self._decisions.get(key)
        if counter is None:
            counter = self._decisions[key] = self._metrics.decisions.labels(
                action_type=key[0], planner=key[1]
            )
        counter.inc()
        return plan

    async def next(self, turn: Turn, today: date, sink: Sink | None = None) -> PlannedAction | None:
        """The turn's next step, or None when the last observation is the answer."""
        if not turn.steps:
            return await self.plan(turn.message, turn.twin_id, today, sink)
        observations = [step.observation for step in turn.steps]
        if self._llm is None:
            return self._scripted(
                deterministic.next_step(turn.message, observations), "deterministic"
            )
        try:
            action, raw = await self._llm.decide(turn.message, turn.twin_id, turn.steps, sink)
        except LLMPlanningError as err:
            self._metrics.llm_requests.labels(outcome=err.reason).inc()
            if not self._fallback:
                raise
            self._metrics.llm_fallbacks.labels(reason=err.reason).inc()
            logger.warning(
                "llm planning failed; deterministic planner continues instead",
                extra={"twin_id": turn.twin_id, "reason": err.reason, "error": str(err)},
            )
            fallback = deterministic.next_step(turn.message, observations)
            if fallback is None:
                return None
            return self._counted(
                PlannedAction(fallback, dump_action(fallback), "deterministic-fallback", str(err))
            )
        self._metrics.llm_requests.labels(outcome="ok").inc()
        return self._counted(PlannedAction(action, raw, "llm"))

    def _scripted(self, action: Action | None, planner: str) -> PlannedAction | None:
        if action is None:
            return None
        return self._counted(PlannedAction(action, dump_action(action), "deterministic"))
