"""``LLMAction``: the planner's typed decision, in the original's JSON form.

``{"action_type": "ActionTool", "details": {"tool_name": ..., "args": {...}}}``.
Only three variants exist. The original's ``ActionBuildTool`` (never
implemented) and ``ActionSelfImprove`` (rewrote the system prompt with no
approval) are deliberately absent, so a planner that emits them is rejected
like any other invalid output.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

SUPPORTED_TOOLS = ("command_exec", "file_write", "vector_query")

_MAX_TEXT = 64_000


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_serialization_defaults_required=True
    )


class MemoryDetails(_Strict):
    query: str = Field(min_length=1, max_length=_MAX_TEXT, description="What to search for.")


class ToolDetails(_Strict):
    tool_name: str = Field(
        min_length=1,
        max_length=128,
        description=f"One of: {', '.join(SUPPORTED_TOOLS)}.",
    )
    args: dict[str, str] = Field(
        default_factory=dict,
        description='String arguments, e.g. {"cmd": "ls -la"} for command_exec.',
    )

    @field_validator("args", mode="before")
    @classmethod
    def _scalars_to_strings(cls, value: Any) -> Any:
        """Accept string values; turn numbers and booleans into their JSON spelling.

        LLMs often answer ``{"count": 3}`` where a string is expected. Objects,
        lists and null are still rejected: there is no single right string for them.
        """
        if not isinstance(value, dict):
            return value
        coerced: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                coerced[key] = "true" if item else "false"
            elif isinstance(item, int | float) and not (
                isinstance(item, float) and not math.isfinite(item)
            ):
                coerced[key] = json.dumps(item)
            else:
                coerced[key] = item
        return coerced


class ResponseDetails(_Strict):
    content: str = Field(min_length=1, max_length=_MAX_TEXT, description="The reply to the user.")


class ActionMemory(_Strict):
    """Search the twin's memory (needs approval)."""

    action_type: Literal["ActionMemory"] = "ActionMemory"
    details: MemoryDetails


class ActionTool(_Strict):
    """Run a tool in the sandbox (needs approval)."""

    action_type: Literal["ActionTool"] = "ActionTool"
    details: ToolDetails


class ActionResponse(_Strict):
    """Answer the user directly."""

    action_type: Literal["ActionResponse"] = "ActionResponse"
    details: ResponseDetails


LLMAction = Annotated[
    ActionMemory | ActionTool | ActionResponse, Field(discriminator="action_type")
]

ACTION_ADAPTER: TypeAdapter[ActionMemory | ActionTool | ActionResponse] = TypeAdapter(LLMAction)


def parse_action(raw: str | bytes) -> ActionMemory | ActionTool | ActionResponse:
    """Validate a JSON document as an ``LLMAction``; raises ``pydantic.ValidationError``."""
    return ACTION_ADAPTER.validate_json(raw)


def dump_action(action: ActionMemory | ActionTool | ActionResponse) -> str:
    """The action in its wire form, ``{"action_type": ..., "details": {...}}``."""
    return action.model_dump_json()


def action_json_schema() -> dict[str, Any]:
    """JSON schema of ``LLMAction`` for a chat-completions ``response_format``.

    Providers accept ``anyOf`` more widely than ``oneOf`` + ``discriminator``,
    and want an object at the root; the ``action_type`` constants still tie
    each branch to its ``details``.
    """
    schema = ACTION_ADAPTER.json_schema(mode="serialization")
    variants = schema.pop("oneOf")
    schema.pop("discriminator", None)
    return {"type": "object", "anyOf": variants, **schema}
