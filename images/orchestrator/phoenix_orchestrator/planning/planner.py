"""Chooses who decides: the built-in date reply, then the LLM or the deterministic rules.

When the LLM fails and ``LLM_FALLBACK_TO_DETERMINISTIC`` is on, the
deterministic planner answers and the ``Plan`` says so (planner
``deterministic-fallback`` plus the error); the fallback is counted. With
fallback off, the failure reaches the caller as ``LLMPlanningError``.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from phoenix_orchestrator.actions import dump_action
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning import LLMPlanningError, Plan, deterministic

if TYPE_CHECKING:
    from phoenix_orchestrator.planning.llm import LLMPlanner

logger = logging.getLogger(__name__)


class Planner:
    """Turns a message into a ``Plan``."""

    def __init__(self, llm: LLMPlanner | None, *, fallback: bool, metrics: Metrics) -> None:
        self._llm = llm
        self._fallback = fallback
        self._metrics = metrics
        self._decisions: dict[tuple[str, str], Any] = {}

    async def plan(self, message: str, twin_id: str, today: date) -> Plan:
        builtin = deterministic.builtin_reply(message, today)
        if builtin is not None:
            return self._counted(Plan(builtin, dump_action(builtin), "builtin"))
        if self._llm is None:
            action = deterministic.plan(message)
            return self._counted(Plan(action, dump_action(action), "deterministic"))
        try:
            action, raw = await self._llm.decide(message, twin_id)
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
                Plan(action, dump_action(action), "deterministic-fallback", planner_error=str(err))
            )
        self._metrics.llm_requests.labels(outcome="ok").inc()
        return self._counted(Plan(action, raw, "llm"))

    def _counted(self, plan: Plan) -> Plan:
        key = (plan.action.action_type, plan.planner)  # a handful of fixed combinations
        counter = self._decisions.get(key)
        if counter is None:
            counter = self._decisions[key] = self._metrics.decisions.labels(
                action_type=key[0], planner=key[1]
            )
        counter.inc()
        return plan
