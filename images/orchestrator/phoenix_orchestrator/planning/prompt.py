"""The system prompt for the LLM planner (PhoenixTwin's own wording).

``SYSTEM_PROMPT_FILE`` replaces the built-in text; ``{twin_id}`` in either is
replaced with the twin the message is for. The prompt is never logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from phoenix_orchestrator.actions import SUPPORTED_TOOLS

if TYPE_CHECKING:
    from phoenix_orchestrator.agent.turns import Step

DEFAULT_PROMPT = """\
You are the planning step of PhoenixTwin digital twin "{twin_id}".
Read the user's message and choose exactly one next action. Reply with one JSON
object and nothing else, in one of these forms:

{"action_type": "ActionResponse", "details": {"content": "<your answer>"}}
{"action_type": "ActionMemory", "details": {"query": "<what to look up>"}}
{"action_type": "ActionTool", "details": {"tool_name": "<tool>", "args": {"<arg>": "<text>"}}}

Choose ActionMemory when answering needs facts the twin stored earlier.
Choose ActionTool only when the user asks for something to be run or written.
The only tools are: {tools}.
- command_exec: args {"cmd": "<one shell command line>"}
- file_write: args {"path": "<relative path>", "content": "<text>"}
- vector_query: args {"query": "<text>", "namespace": "<namespace>"}
Never invent a tool. All argument values are strings. A human approves every
memory search and tool run before it happens, so say plainly what you intend.
Otherwise answer with ActionResponse.

After a memory search or tool run you are shown its result and choose again:
answer with ActionResponse, or ask for one more memory search or tool run. If
a human denied an action, you are told so and why; do not ask for it again.
"""


def load_template(path: Path | None) -> str:
    """The prompt template: the file's text when it is set and non-empty, else the default."""
    if path is not None:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    return DEFAULT_PROMPT


def render(template: str, twin_id: str) -> str:
    """The template with ``{twin_id}`` and ``{tools}`` filled in; other braces stay as written."""
    return template.replace("{twin_id}", twin_id).replace("{tools}", ", ".join(SUPPORTED_TOOLS))


def observation_message(step: int, observation: str) -> str:
    """What the planner is told after step ``step`` (a result, or a denial and its reason)."""
    return (
        f"Result of step {step}:\n{observation}\n\n"
        "Choose the next action: answer with ActionResponse, or request one more memory "
        "search or tool run."
    )


def conversation(
    template: str, twin_id: str, message: str, steps: Sequence[Step]
) -> list[dict[str, str]]:
    """The chat messages for the next decision: system, user, then each step and its result."""
    messages = [
        {"role": "system", "content": render(template, twin_id)},
        {"role": "user", "content": message},
    ]
    for step in steps:
        messages.append({"role": "assistant", "content": step.action})
        if step.observation is not None:
            messages.append(
                {"role": "user", "content": observation_message(step.step, step.observation)}
            )
    return messages
