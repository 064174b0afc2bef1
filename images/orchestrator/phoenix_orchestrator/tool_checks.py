"""Checks a tool call before a human sees it or after a human edited it (pure).

Two checks, both also run by the tools service before anything executes (it
stays the authority; these catch a bad call while a human is still looking):

- the tool's argument schema (``validate_arguments``): exactly the keys the tool
  takes, the ones it needs present, sizes bounded;
- the twin's tool policy (``policy_refusal``), in the tools service's own
  document format (``TOOL_POLICY``, rendered by the operator from
  ``spec.tools.policy``): the tool must be allowed for the twin, and no program
  of a command line may be restricted or missing from the twin's ``programs``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from phoenix_orchestrator.approvals import patterns

ANY = "*"
MAX_COMMAND_CHARS = 16_000
MAX_CONTENT_CHARS = 1_000_000


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class CommandExecArgs(_Args):
    cmd: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)

    @field_validator("cmd")
    @classmethod
    def _one_line_of_text(cls, value: str) -> str:
        if not value.strip() or "\0" in value:
            raise ValueError("must be a non-empty shell command line without NUL")
        return value


class FileWriteArgs(_Args):
    path: str = Field(min_length=1, max_length=4096)
    content: str = Field(max_length=MAX_CONTENT_CHARS)

    @field_validator("path")
    @classmethod
    def _inside_the_sandbox(cls, value: str) -> str:
        if patterns.normalised_path(value) is None:
            raise ValueError("must be a relative path inside the sandbox (no '..', no NUL)")
        return value


class VectorQueryArgs(_Args):
    query: str = Field(min_length=1, max_length=64_000)
    namespace: str | None = Field(None, min_length=1, max_length=64)
    top_k: str | None = Field(None, pattern=r"^(100|[1-9][0-9]?)$")


class MemoryArgs(_Args):
    query: str = Field(min_length=1, max_length=64_000)


_SCHEMAS: dict[str, type[_Args]] = {
    "command_exec": CommandExecArgs,
    "file_write": FileWriteArgs,
    "vector_query": VectorQueryArgs,
    "memory": MemoryArgs,
}


class InvalidArguments(ValueError):
    """The call's arguments do not fit the tool's schema; the message names the field."""


def validate_arguments(tool: str, arguments: Mapping[str, str]) -> dict[str, str]:
    """The arguments in the tool's schema, or InvalidArguments naming the first problem.

    ``command_exec`` also takes the original's ``command``/``cmdline`` spelling,
    which is read as ``cmd``.
    """
    schema = _SCHEMAS.get(tool)
    if schema is None:
        raise InvalidArguments(f"tool '{tool}' has no argument schema")
    values = dict(arguments)
    if tool == "command_exec" and "cmd" not in values:
        for legacy in ("command", "cmdline"):
            if legacy in values:
                values["cmd"] = values.pop(legacy)
                break
    try:
        checked = schema.model_validate(values)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "arguments"
        raise InvalidArguments(f"{tool} arguments: {field}: {first['msg']}") from None
    return {k: v for k, v in checked.model_dump().items() if v is not None}


class TwinToolPolicy(BaseModel):
    """One twin's entry of the tools policy document."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    allowed: frozenset[str] = frozenset()
    programs: frozenset[str] = frozenset()
    restricted: frozenset[str] = frozenset()


class ToolPolicy(BaseModel):
    """The tools service's policy document (docs/tools.md), as the operator renders it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    restricted: frozenset[str] = frozenset({"rm", "delete", "format", "shutdown", "reboot"})
    twins: dict[str, TwinToolPolicy] = Field(default_factory=dict)

    def for_twin(self, twin_id: str) -> TwinToolPolicy | None:
        return self.twins.get(twin_id) or self.twins.get(ANY)


def policy_refusal(
    policy: ToolPolicy, twin_id: str, tool: str, arguments: Mapping[str, str]
) -> str | None:
    """Why the twin's tool policy refuses this call, or None when it may go ahead."""
    twin = policy.for_twin(twin_id)
    if twin is None or (ANY not in twin.allowed and tool not in twin.allowed):
        return f"Twin '{twin_id}' is not authorized to execute '{tool}'"
    programs = patterns.programs_in(patterns.command_line(arguments))
    if tool != "command_exec" or programs is None:
        return None  # not a command line, or one only the tools service's parser can read
    restricted = policy.restricted | twin.restricted
    for program in programs:
        name = patterns.program_name(program)
        if name in restricted:
            return f"Command '{name}' is restricted"
        if ANY not in twin.programs and program not in twin.programs and name not in twin.programs:
            return f"Program '{program}' is not in the programs twin '{twin_id}' may run"
    return None
