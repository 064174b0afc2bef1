"""Planning: a chat message (and, in the agent loop, the steps so far) -> one ``LLMAction``.

``deterministic`` holds the pure rules (and the built-in date reply), ``llm``
asks an OpenAI-compatible chat-completions API, and ``planner`` chooses
between them and falls back visibly when the LLM fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from phoenix_orchestrator.actions import ActionMemory, ActionResponse, ActionTool

Action = ActionMemory | ActionTool | ActionResponse
PlannerName = Literal["builtin", "deterministic", "llm", "deterministic-fallback"]
FailureReason = Literal["timeout", "unavailable", "http_error", "invalid_output"]


class LLMPlanningError(Exception):
    """The LLM gave no usable decision; the message is safe to show to users."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason


@dataclass(frozen=True)
class PlannedAction:
    """A decision, the planner's raw output it came from, and who made it."""

    action: Action
    raw_decision: str
    planner: PlannerName
    planner_error: str | None = None
