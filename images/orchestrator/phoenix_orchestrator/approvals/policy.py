"""The twin's approval policy: for each proposed call, ask a human, run it, or refuse it (pure).

The operator renders ``spec.approvals`` into ``APPROVAL_POLICY`` (JSON, the
spec's camelCase field names). Rules are tried in order and the first that
matches decides; none matching, ``defaultAction`` does. A rule names a tool
(``command_exec``, ``file_write``, ``vector_query``, ``memory`` or ``*``) and may
narrow it by the call's arguments:

- ``programs``: every program the command line starts is one of these, by the
  exact word (``ls`` does not cover ``/tmp/ls``);
- ``pathPrefixes``: the written path lies under one of these directories.

A condition that cannot be evaluated (a command line ``patterns.programs_in``
cannot read for sure) never lets a call through more easily: it is no match for
an ``auto`` rule and a match for ``ask`` and ``deny`` rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from phoenix_orchestrator.approvals import TimeoutAction, patterns

ApprovalAction = Literal["ask", "auto", "deny"]
PolicyTool = Literal["*", "memory", "command_exec", "file_write", "vector_query"]
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class ApprovalRule(_Camel):
    """One rule: a tool, optional conditions on its arguments, and what to do."""

    tool: PolicyTool
    action: ApprovalAction = "ask"
    programs: tuple[str, ...] | None = Field(None, min_length=1, max_length=256)
    path_prefixes: tuple[str, ...] | None = Field(None, min_length=1, max_length=64)
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS)
    on_timeout: TimeoutAction | None = None

    @model_validator(mode="after")
    def _conditions_fit_the_tool(self) -> ApprovalRule:
        if self.programs is not None and self.tool != "command_exec":
            raise ValueError(f"programs applies to tool command_exec only, not {self.tool}")
        if self.path_prefixes is not None and self.tool != "file_write":
            raise ValueError(f"pathPrefixes applies to tool file_write only, not {self.tool}")
        if self.path_prefixes is not None:
            for prefix in self.path_prefixes:
                if patterns.normalised_path(prefix) is None:
                    raise ValueError(
                        f"pathPrefixes entry {prefix!r} is not a path inside the sandbox"
                    )
        return self


class ApprovalPolicy(_Camel):
    """``spec.approvals``: the default, the timeout and the rules."""

    default_action: ApprovalAction = "ask"
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS)
    on_timeout: TimeoutAction = "deny"
    rules: tuple[ApprovalRule, ...] = Field((), max_length=64)


@dataclass(frozen=True)
class Verdict:
    """What to do with one call, the rule that said so, and its timeout."""

    action: ApprovalAction
    rule: str  # "rules[2]" or "default": stable, audited and shown to humans
    timeout_seconds: int
    on_timeout: TimeoutAction

    @property
    def label(self) -> str:
        return f"{self.action}:{self.rule}"


Match = Literal["yes", "no", "unknown"]


def _programs_match(programs: tuple[str, ...], arguments: Mapping[str, str]) -> Match:
    found = patterns.programs_in(patterns.command_line(arguments))
    if found is None:
        return "unknown"
    return "yes" if all(program in programs for program in found) else "no"


def _path_match(prefixes: tuple[str, ...], arguments: Mapping[str, str]) -> Match:
    path = arguments.get("path", "")
    if patterns.normalised_path(path) is None:
        return "unknown"
    return "yes" if any(patterns.under_prefix(path, p) for p in prefixes) else "no"


def rule_matches(rule: ApprovalRule, tool: str, arguments: Mapping[str, str]) -> bool:
    """True when ``rule`` decides this call (see the module docstring for ``unknown``)."""
    if rule.tool not in ("*", tool):
        return False
    results: list[Match] = []
    if rule.programs is not None:
        results.append(_programs_match(rule.programs, arguments))
    if rule.path_prefixes is not None:
        results.append(_path_match(rule.path_prefixes, arguments))
    if "no" in results:
        return False
    if "unknown" in results:
        return rule.action != "auto"
    return True


def evaluate(
    policy: ApprovalPolicy, tool: str, arguments: Mapping[str, str], *, default_timeout: int
) -> Verdict:
    """The verdict for a call of ``tool`` (``memory`` for a memory search) with ``arguments``."""
    timeout = policy.timeout_seconds or default_timeout
    for index, rule in enumerate(policy.rules):
        if rule_matches(rule, tool, arguments):
            return Verdict(
                action=rule.action,
                rule=f"rules[{index}]",
                timeout_seconds=rule.timeout_seconds or timeout,
                on_timeout=rule.on_timeout or policy.on_timeout,
            )
    return Verdict(policy.default_action, "default", timeout, policy.on_timeout)
