"""One reply for a turn made of several steps, and the chunks a streaming client sees.

A turn may run a search, run a tool, then answer; the client gets one reply
whose ``response`` is each step's text in order, separated by a blank line,
and whose other fields come from the steps that set them (the last request
asked for, the last tool result). A turn of one step is exactly that step's
reply, as before the loop existed.

Streamed, the same text arrives as chunks first: a step's text as one chunk
when the step ends, an LLM's answer piece by piece as it is generated. Joined,
the chunks are the final ``response`` unless an answer was cut short and
replaced (a fallback after a failed stream); the final reply is always the
authority.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from phoenix_orchestrator.api import ChatResponse

SEPARATOR = "\n\n"
Sink = Callable[[str], Awaitable[None]]


class Replies:
    """Accumulates a turn's replies; passes their text to ``sink`` (if any) as it grows."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._parts: list[ChatResponse] = []
        self._sink = sink
        self._streamed = ""  # text of the current (unfinished) part already sent
        self.actions_prefix: list[str] = []

    @property
    def empty(self) -> bool:
        return not self._parts

    async def stream(self, delta: str) -> None:
        """A piece of the answer being planned right now."""
        if self._sink is None or not delta:
            return
        if not self._streamed and self._parts:
            await self._sink(SEPARATOR)
        self._streamed += delta
        await self._sink(delta)

    async def add(self, part: ChatResponse) -> None:
        """A finished step's reply; its text is sent unless it already streamed."""
        if self._sink is not None:
            text = part.response
            if not self._streamed:
                await self._sink((SEPARATOR if self._parts else "") + text)
            elif text.startswith(self._streamed) and len(text) > len(self._streamed):
                await self._sink(text[len(self._streamed) :])
            # else: the reply differs from what streamed; the final reply is the authority
        self._streamed = ""
        self._parts.append(part)

    def build(self, *, turn_id: str | None, steps: int | None) -> ChatResponse:
        """The turn's reply: a new object (a part may be shared: one denial's reply resumes
        several turns), whose fields are replaced here, never changed in place; so a shallow
        copy does (a deep one cost a seventh of the chat path's CPU)."""
        first, last = self._parts[0], self._parts[-1]
        if len(self._parts) == 1:
            reply = first.model_copy()
            reply.actions_taken = [*self.actions_prefix, *reply.actions_taken]
        else:
            reply = last.model_copy()
            reply.response = SEPARATOR.join(part.response for part in self._parts)
            reply.job_id = first.job_id
            reply.actions_taken = [
                *self.actions_prefix,
                *(action for part in self._parts for action in part.actions_taken),
            ]
            for name in ("tool_result", "source_memories", "raw_orchestrator_decision"):
                if getattr(reply, name) is None:
                    found = [getattr(p, name) for p in self._parts if getattr(p, name) is not None]
                    setattr(reply, name, found[-1] if found else None)
            reply.planner = next((p.planner for p in self._parts if p.planner), None)
            reply.planner_error = next(
                (p.planner_error for p in self._parts if p.planner_error), None
            )
        if turn_id is not None:
            reply.turn_id, reply.steps = turn_id, steps
        return reply
