"""Approval decisions sent as chat messages, as the original's UI sends them.

- ``[TOOL_EXECUTED] <tool_name> - CONFIRMED`` / ``[TOOL_DENIED] <tool_name>``
- ``[MEMORY_SHOWN] <memory_id>`` / ``[MEMORY_DENIED] <memory_id>``

A denial may add a reason after `` - `` (``[TOOL_DENIED] command_exec - not on
prod``); the planner is shown it. The original UI never sends one.
- ``[CONFIG_RESPONSE] ...`` / ``[CONFIG_DENIED] ...`` (answers to a
  ``prompt_for_config`` this orchestrator never issues)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

_PREFIXES: dict[str, tuple[Literal["tool", "memory", "config"], bool]] = {
    "[TOOL_EXECUTED]": ("tool", True),
    "[TOOL_DENIED]": ("tool", False),
    "[MEMORY_SHOWN]": ("memory", True),
    "[MEMORY_DENIED]": ("memory", False),
    "[CONFIG_RESPONSE]": ("config", True),
    "[CONFIG_DENIED]": ("config", False),
}


@dataclass(frozen=True)
class ApprovalMessage:
    """A parsed decision: what kind, approve or deny, and the tool name or id it names."""

    kind: Literal["tool", "memory", "config"]
    approve: bool
    subject: str
    reason: str | None = None


def parse(message: str) -> ApprovalMessage | None:
    """The decision ``message`` carries, or None for an ordinary message."""
    text = message.strip()
    for prefix, (kind, approve) in _PREFIXES.items():
        if text.startswith(prefix):
            rest = text[len(prefix) :].strip()
            after = ""
            if kind == "tool":
                # "<tool_name> - CONFIRMED": the name ends at the first "-".
                rest, _, after = rest.partition("-")
                rest = rest.strip()
            elif kind == "memory":
                rest, _, after = rest.partition(" ") if rest else ("", "", "")
                after = after.strip().removeprefix("-")
            reason = after.strip() if not approve and kind != "config" else ""
            return ApprovalMessage(kind=kind, approve=approve, subject=rest, reason=reason or None)
    return None
