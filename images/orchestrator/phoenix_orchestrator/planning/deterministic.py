"""The deterministic planner: keyword rules on the message, no IO, no clock.

The rules are the original's, checked on the lower-cased message in order:

1. "write" and "file" -> ``ActionTool`` ``command_exec`` writing ``test.txt``;
2. "search", "find" or "memory" -> ``ActionMemory`` with the message as query;
3. anything else -> ``ActionResponse`` echoing the message.

``builtin_reply`` answers date questions before any planner runs; the caller
passes today's date in.
"""

from __future__ import annotations

from datetime import date

from phoenix_orchestrator.actions import (
    ActionMemory,
    ActionResponse,
    ActionTool,
    MemoryDetails,
    ResponseDetails,
    ToolDetails,
)
from phoenix_orchestrator.planning import Action

_DATE_PHRASES = ("what date is it", "current date", "what day is it", "today's date")
_MEMORY_WORDS = ("search", "find", "memory")
DEMO_WRITE_COMMAND = "echo hello world> test.txt"


def builtin_reply(message: str, today: date) -> ActionResponse | None:
    """Today's date when the message asks for it, else None."""
    text = message.lower()
    asks_date = ("today" in text and "date" in text) or any(p in text for p in _DATE_PHRASES)
    if not asks_date:
        return None
    content = f"Today's date is {today.isoformat()} ({today.strftime('%A')})."
    return ActionResponse(details=ResponseDetails(content=content))


def plan(message: str) -> Action:
    """The original's keyword rules, applied to ``message``."""
    text = message.lower()
    if "write" in text and "file" in text:
        return ActionTool(
            details=ToolDetails(tool_name="command_exec", args={"cmd": DEMO_WRITE_COMMAND})
        )
    if any(word in text for word in _MEMORY_WORDS):
        return ActionMemory(details=MemoryDetails(query=message))
    return ActionResponse(details=ResponseDetails(content=f"I understand you said: '{message}'."))
