"""Reading a streamed chat completion, and the answer text inside the JSON being streamed.

With ``stream: true`` an OpenAI-compatible endpoint sends server-sent events,
one ``data: {chunk}`` per line and ``data: [DONE]`` at the end; each chunk
carries ``choices[0].delta.content`` and, with
``stream_options.include_usage``, the last one carries ``usage``.

The planner's reply is one JSON ``LLMAction``. Only an ``ActionResponse``'s
``details.content`` is meant for the user, so ``AnswerStream`` re-reads the JSON
received so far as *partial* JSON (pydantic-core's ``allow_partial``) and hands
on the new end of ``content`` only once ``action_type`` is known to be
``ActionResponse``: a tool call's arguments (``file_write`` has a ``content``
too) are never streamed to anyone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic_core import from_json

ANSWER_TYPE = "ActionResponse"


class AnswerStream:
    """Accumulates a streamed decision; ``feed`` returns the answer text that became known."""

    def __init__(self) -> None:
        self._text = ""
        self._emitted = ""

    @property
    def text(self) -> str:
        return self._text

    @property
    def emitted(self) -> str:
        return self._emitted

    def feed(self, delta: str) -> str:
        self._text += delta
        body = self._text.lstrip()
        if body.startswith("```"):  # a fenced reply: the JSON starts after the first line
            newline = body.find("\n")
            if newline < 0:
                return ""
            body = body[newline + 1 :]
        if not body.startswith("{"):
            return ""
        try:
            partial = from_json(body, allow_partial="trailing-strings")
        except ValueError:
            return ""
        if not isinstance(partial, dict) or partial.get("action_type") != ANSWER_TYPE:
            return ""
        details = partial.get("details")
        content = details.get("content") if isinstance(details, dict) else None
        if not isinstance(content, str) or not content.startswith(self._emitted):
            return ""
        new = content[len(self._emitted) :]
        self._emitted = content
        return new


async def events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of an SSE body's ``data:`` lines, up to ``[DONE]``."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].strip())
            continue
        if line.strip() or not data:
            continue  # comments, event names, ids; or a blank line with nothing buffered
        payload, data = "\n".join(data), []
        if payload == "[DONE]":
            return
        try:
            decoded = json.loads(payload)
        except ValueError:
            continue
        if isinstance(decoded, dict):
            yield decoded
    if data and data[0] != "[DONE]":
        try:
            decoded = json.loads("\n".join(data))
        except ValueError:
            return
        if isinstance(decoded, dict):
            yield decoded


def delta_of(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """(content delta, finish reason) of one streamed chunk."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    choice = choices[0]
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    reason = choice.get("finish_reason")
    return (content if isinstance(content, str) else ""), (
        reason if isinstance(reason, str) else None
    )
