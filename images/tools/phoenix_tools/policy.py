"""Tool policy: a request plus a policy -> a decision, the rule that made it, and what runs.

Pure: no IO besides resolving program names through an injectable resolver.

Order of evaluation (deny wins, default deny):

1. The request's ``command`` (a tool name or a program) against the restricted
   list, then against the twin's ``allowed`` list, as the original did.
2. The argv that will really run. For ``command_exec`` the shell line is parsed
   and every program it can start is checked; a direct program is checked
   itself. Each program must have a valid name, must not be restricted, must
   live in the read-only system tree, must not be an interpreter or use an
   exec-capable flag unless named explicitly (never in SAFE_MODE), and must be
   permitted by the twin's ``programs`` (by name, path or ``"*"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from phoenix_tools import programs, shell
from phoenix_tools.programs import Program
from phoenix_tools.requests import TWIN_ID

COMMAND_EXEC = "command_exec"
FILE_WRITE = "file_write"
VECTOR_QUERY = "vector_query"
TOOLS = frozenset({COMMAND_EXEC, FILE_WRITE, VECTOR_QUERY})
ANY = "*"
DEFAULT_RESTRICTED = frozenset({"rm", "delete", "format", "shutdown", "reboot"})


class Resolver(Protocol):
    def __call__(self, name: str, *, builtins: bool = True) -> Program: ...


class TwinPolicy(BaseModel):
    """What one twin may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: frozenset[str] = Field(
        frozenset(),
        description="Tools and programs the request's command may name; '*' for all.",
    )
    programs: frozenset[str] = Field(
        frozenset(),
        description="Programs a command may run: names, absolute paths, or '*' for any "
        "non-interpreter program of the system tree.",
    )
    restricted: frozenset[str] = Field(
        frozenset(), description="Programs denied to this twin on top of the global list."
    )


class ToolPolicy(BaseModel):
    """The whole policy document: a global restricted list and one entry per twin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    restricted: frozenset[str] = DEFAULT_RESTRICTED
    twins: Mapping[str, TwinPolicy] = Field(default_factory=dict)

    @field_validator("twins")
    @classmethod
    def _twin_ids(cls, twins: Mapping[str, TwinPolicy]) -> Mapping[str, TwinPolicy]:
        bad = [t for t in twins if t != ANY and not TWIN_ID.match(t)]
        if bad:
            raise ValueError(f"invalid twin ids {bad}: use [A-Za-z0-9][A-Za-z0-9_-]{{0,62}}")
        return dict(twins)

    def for_twin(self, twin_id: str) -> TwinPolicy | None:
        """The twin's entry, else the '*' entry, else None (unknown twin)."""
        return self.twins.get(twin_id) or self.twins.get(ANY)


def default_policy() -> ToolPolicy:
    """The original's hard-coded policy, so its examples work without a policy file."""
    return ToolPolicy(
        restricted=DEFAULT_RESTRICTED,
        twins={
            "twin-aegis": TwinPolicy(allowed=frozenset({ANY}), programs=frozenset({ANY})),
            "twin-sentinel": TwinPolicy(
                allowed=frozenset({COMMAND_EXEC, FILE_WRITE, VECTOR_QUERY}),
                programs=frozenset({ANY}),
            ),
            "twin-trace": TwinPolicy(allowed=frozenset({VECTOR_QUERY})),
        },
    )


@dataclass(frozen=True)
class PolicyOptions:
    """Process-wide switches that change evaluation."""

    safe_mode: bool = False
    allow_restricted: bool = False

    @property
    def restricted_enforced(self) -> bool:
        """SAFE_MODE makes the restricted list unbypassable."""
        return self.safe_mode or not self.allow_restricted


@dataclass(frozen=True)
class PolicyDecision:
    """Allowed or not, the rule that decided (stable, for audit and metrics), and why."""

    allowed: bool
    rule: str
    reason: str = ""

    @property
    def rule_kind(self) -> str:
        return self.rule.split(":", 1)[0]


@dataclass(frozen=True)
class ExecutionPlan:
    """What to do once allowed: a tool, or an argv to run in the sandbox."""

    kind: Literal["exec", "file_write", "vector_query"]
    argv: tuple[str, ...] = ()
    program: Program | None = None
    programs_checked: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Evaluation:
    decision: PolicyDecision
    plan: ExecutionPlan | None


def evaluate(
    twin_id: str,
    command: str,
    args: Sequence[str],
    policy: ToolPolicy,
    options: PolicyOptions,
    *,
    resolve: Resolver = programs.resolve,
) -> Evaluation:
    """Decide one request; ``plan`` is set only when allowed."""
    twin = policy.for_twin(twin_id)
    if twin is None:
        # The original's wording: its clients show it (user_<hex> ids from its UI land here).
        return _deny(
            f"unknown-twin:{twin_id}", f"Twin '{twin_id}' is not authorized to execute '{command}'"
        )
    restricted = policy.restricted | twin.restricted
    if command in restricted and options.restricted_enforced:
        suffix = " in safe mode" if options.safe_mode else ""
        return _deny(f"restricted:{command}", f"Command '{command}' is restricted{suffix}")

    if command not in TOOLS:
        return _direct_program(
            twin_id, command, args, twin=twin, restricted=restricted, options=options,
            resolve=resolve,
        )  # fmt: skip
    if ANY not in twin.allowed and command not in twin.allowed:
        return _deny(
            f"not-allowed:{command}",
            f"Twin '{twin_id}' is not authorized to execute '{command}'",
        )
    if command == COMMAND_EXEC:
        return _command_exec(args, twin, restricted, options, resolve)
    kind: Literal["file_write", "vector_query"] = (
        "file_write" if command == FILE_WRITE else "vector_query"
    )
    return Evaluation(PolicyDecision(True, f"allowed:{command}"), ExecutionPlan(kind))


def _command_exec(
    args: Sequence[str],
    twin: TwinPolicy,
    restricted: frozenset[str],
    options: PolicyOptions,
    resolve: Resolver,
) -> Evaluation:
    if not args:
        return _deny("shell:empty", "command_exec needs the shell line as args[0]")
    line = args[0]
    try:
        if options.safe_mode:
            argv = shell.split_plain(line)
            commands = [shell.ShellCommand(tuple(argv))]
        else:
            commands = shell.parse(line)
    except shell.ShellRejected as err:
        return _deny("shell-syntax", str(err))
    checked: list[str] = []
    resolved: list[Program] = []
    for cmd in commands:
        decision, program = _shell_command(cmd, twin, restricted, options, resolve)
        if not decision.allowed or program is None:
            return Evaluation(decision, None)
        resolved.append(program)
        checked.append(program.real_path or program.given)
    if options.safe_mode:
        # No shell at all: the one command runs as an argv, by its resolved path.
        first = resolved[0]  # split_plain returns >= 1 word
        runnable = first.found and not first.builtin and first.sandbox_path is not None
        argv0 = first.sandbox_path if runnable and first.sandbox_path else first.given
        rest = tuple(a for a in commands[0].argv[1:] if a is not None)
        plan = ExecutionPlan("exec", (argv0, *rest), first, tuple(checked))
        return Evaluation(PolicyDecision(True, "allowed:command_exec"), plan)
    plan = ExecutionPlan("exec", ("/bin/sh", "-c", line), programs_checked=tuple(checked))
    return Evaluation(PolicyDecision(True, "allowed:command_exec"), plan)


def _shell_command(
    cmd: shell.ShellCommand,
    twin: TwinPolicy,
    restricted: frozenset[str],
    options: PolicyOptions,
    resolve: Resolver,
) -> tuple[PolicyDecision, Program | None]:
    """The decision for one command of a shell line, and the program it resolved to."""
    name_problem = programs.invalid_name_reason(cmd.program)
    if name_problem is not None:
        return PolicyDecision(False, "invalid-program-name", name_problem), None
    if "/" in cmd.program and not cmd.program.startswith("/") and not options.safe_mode:
        # `cd` can move the shell anywhere, so a relative path may not mean what it
        # seems (../usr/bin/ls from a /tmp copy); names and absolute paths cannot drift.
        reason = (
            f"relative program path {cmd.program!r} in a shell line; use the program's "
            "name or an absolute path"
        )
        return PolicyDecision(False, f"relative-program-path:{cmd.program}", reason), None
    program = resolve(cmd.program, builtins=not options.safe_mode)
    decision = check_program(program, cmd.argv[1:], twin.programs, restricted, options)
    return decision, program


def _direct_program(
    twin_id: str,
    command: str,
    args: Sequence[str],
    *,
    twin: TwinPolicy,
    restricted: frozenset[str],
    options: PolicyOptions,
    resolve: Resolver,
) -> Evaluation:
    name_problem = programs.invalid_name_reason(command)
    if name_problem is not None:
        return _deny("invalid-program-name", name_problem)
    program = resolve(command, builtins=False)
    if ANY not in twin.allowed and not _named(program, twin.allowed):
        return _deny(
            f"not-allowed:{command}", f"Twin '{twin_id}' is not authorized to execute '{command}'"
        )
    # Naming a program in ``allowed`` permits it as explicitly as naming it in ``programs``.
    decision = check_program(program, args, twin.programs | twin.allowed, restricted, options)
    if not decision.allowed:
        return Evaluation(decision, None)
    argv = (program.sandbox_path or command, *args)
    checked = (program.real_path or command,)
    return Evaluation(
        decision, ExecutionPlan("exec", argv, program=program, programs_checked=checked)
    )


def check_program(  # noqa: PLR0911 - one return per rule, in evaluation order
    program: Program,
    args: Sequence[str | None],
    permitted: frozenset[str],
    restricted: frozenset[str],
    options: PolicyOptions,
) -> PolicyDecision:
    """The decision for one program with its arguments (the heart of the policy)."""
    hit = _named(program, restricted)
    if hit and options.restricted_enforced:
        suffix = " in safe mode" if options.safe_mode else ""
        return PolicyDecision(False, f"restricted:{hit}", f"Command '{hit}' is restricted{suffix}")
    if not program.builtin and program.sandbox_path is not None and not program.system:
        return PolicyDecision(
            False,
            f"outside-system-path:{program.sandbox_path}",
            f"'{program.given}' resolves to {program.sandbox_path}, outside the read-only "
            "system tree; only installed programs may run",
        )
    explicit = _named(program, permitted)
    if programs.is_interpreter(program):
        if options.safe_mode or not explicit:
            why = "SAFE_MODE refuses them" if options.safe_mode else "name it explicitly"
            return PolicyDecision(
                False,
                f"interpreter:{program.given}",
                f"'{program.given}' can run arbitrary code; {why} in the twin's programs",
            )
        return PolicyDecision(True, f"allowed:{explicit}")
    flag = programs.exec_capable_flag(program, args)
    if flag is not None and (options.safe_mode or not explicit):
        return PolicyDecision(
            False,
            f"exec-capable:{program.given}",
            f"'{program.given} {flag}' can run or write arbitrary things; "
            "not allowed unless the program is named explicitly (never in SAFE_MODE)",
        )
    if explicit:
        return PolicyDecision(True, f"allowed:{explicit}")
    if ANY in permitted:
        return PolicyDecision(True, "allowed:*")
    return PolicyDecision(
        False, f"default-deny:{program.given}", f"'{program.given}' is not in the twin's programs"
    )


def _named(program: Program, entries: frozenset[str]) -> str | None:
    """The entry naming this program: a bare name, or an absolute path it resolves to."""
    for entry in sorted(entries):
        if entry == ANY:
            continue
        if entry.startswith("/"):
            if entry in (program.sandbox_path, program.real_path):
                return entry
        elif entry in program.names:
            return entry
    return None


def _deny(rule: str, reason: str) -> Evaluation:
    return Evaluation(PolicyDecision(False, rule, reason), None)
