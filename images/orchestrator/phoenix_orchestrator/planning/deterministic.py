"""The deterministic planner: keyword rules on the message, no IO, no clock.

The rules are the original's, checked on the lower-cased message in order:

1. "write" and "file" -> ``ActionTool`` ``command_exec`` writing ``test.txt``;
2. "search", "find" or "memory" -> ``ActionMemory`` with the message as query;
3. anything else -> ``ActionResponse`` echoing the message.

Two scripted multi-step paths exercise the agent loop without a model
(``next_step`` continues them after each observation):

- ``investigate <topic>``: a memory search for the topic, then a
  ``command_exec`` echoing it, then an answer citing both results;
- ``keep searching <topic>``: a memory search after every result, for ever:
  only the twin's step limit ends it.

After any step a human denied with a reason, the answer acknowledges the
reason. Otherwise there is no next step: the result itself is the answer, as
the original replied.

``builtin_reply`` answers date questions before any planner runs; the caller
passes today's date in.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
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

INVESTIGATE = "investigate "
KEEP_SEARCHING = "keep searching "
DENIED = "Denied"  # how a denial's observation starts (see agent.loop)
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


def _topic(message: str, prefix: str) -> str | None:
    text = message.strip()
    if text.lower().startswith(prefix) and text[len(prefix) :].strip():
        return text[len(prefix) :].strip()
    return None


def plan(message: str) -> Action:
    """The first step for ``message``: a script's, else the original's keyword rules."""
    for prefix in (INVESTIGATE, KEEP_SEARCHING):
        topic = _topic(message, prefix)
        if topic is not None:
            return ActionMemory(details=MemoryDetails(query=topic))
    text = message.lower()
    if "write" in text and "file" in text:
        return ActionTool(
            details=ToolDetails(tool_name="command_exec", args={"cmd": DEMO_WRITE_COMMAND})
        )
    if any(word in text for word in _MEMORY_WORDS):
        return ActionMemory(details=MemoryDetails(query=message))
    return ActionResponse(details=ResponseDetails(content=f"I understand you said: '{message}'."))


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "(nothing)"


def next_step(message: str, observations: Sequence[str | None]) -> Action | None:
    """The step after ``observations`` (one per step taken), or None: the last result answers.

    Pure: the message and what each step observed are all it reads.
    """
    if not observations or observations[-1] is None:
        return None
    last = observations[-1]
    if last.startswith(DENIED):
        return ActionResponse(
            details=ResponseDetails(content=f"Understood; I did not go ahead. {last}")
        )
    topic = _topic(message, KEEP_SEARCHING)
    if topic is not None:
        return ActionMemory(details=MemoryDetails(query=f"{topic} (pass {len(observations) + 1})"))
    topic = _topic(message, INVESTIGATE)
    return None if topic is None else _investigation(topic, observations)


def _investigation(topic: str, observations: Sequence[str | None]) -> Action | None:
    """Step 2 of ``investigate``: run a tool; step 3: answer from both results."""
    if len(observations) == 1:
        command = f"echo {shlex.quote('investigated: ' + topic)}"
        return ActionTool(details=ToolDetails(tool_name="command_exec", args={"cmd": command}))
    if len(observations) == 2:
        return ActionResponse(
            details=ResponseDetails(
                content=f"Investigation of '{topic}' finished after 2 steps. "
                f"Memory: {_first_line(observations[0])} Tool: {_first_line(observations[1])}"
            )
        )
    return None
