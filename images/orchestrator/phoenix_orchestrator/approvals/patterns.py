"""Pure helpers over a call's arguments: their hash, the programs a command line starts,
path prefixes, and the pattern a session grant covers.

``programs_in`` is deliberately conservative. It understands plain command
lines (words, quotes, ``;``, ``|``, ``&&``, ``||``, ``&``, redirections and
leading ``NAME=value`` assignments) and answers None for anything it cannot be
sure about (command or process substitution, parameter expansion, subshells,
shell keywords, unbalanced quotes). None never makes a call *easier* to run: an
``auto`` rule or a grant needs a definite answer, a ``deny`` rule treats None as
a match. The tools service parses and checks every command again before it runs.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

COMMAND_KEYS = ("cmd", "command", "cmdline")
_SEPARATORS = frozenset({";", "|", "||", "&&", "&", "|&", ";;", "\n"})
_REDIRECTIONS = frozenset({">", "<", ">>", "<<", "<>", ">|", "&>", "&>>", ">&", "<&"})
_UNSURE_TEXT = ("`", "$(", "${", "<(", ">(")
# Programs that run other programs named in their arguments: what really runs is unknown.
_LAUNCHERS = frozenset(
    {"env", "exec", "command", "builtin", "eval", "source", ".", "sudo", "doas", "su", "runuser",
     "xargs", "nohup", "timeout", "nice", "ionice", "stdbuf", "setsid", "chroot", "unshare",
     "nsenter", "watch", "strace", "ltrace", "sh", "bash", "dash", "zsh", "ksh", "busybox",
     "parallel", "flock", "script"}
)  # fmt: skip
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint"})
_WILD = frozenset("*?[]$~\\")
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
     "function", "select", "time", "coproc", "!", "{", "}", "(", ")", "[[", "]]"}
)  # fmt: skip


def arguments_hash(kind: str, tool: str | None, arguments: Mapping[str, str]) -> str:
    """SHA-256 of the call in canonical JSON: equal calls, equal hashes; shown to humans and
    audited, so a decision can name exactly the arguments it saw."""
    canonical = json.dumps(
        {"kind": kind, "tool": tool or "", "arguments": dict(arguments)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def command_line(arguments: Mapping[str, str]) -> str:
    """The shell line of a ``command_exec`` call, read as the execution mapping reads it."""
    for key in COMMAND_KEYS:
        if key in arguments:
            return arguments[key]
    values = list(arguments.values())
    return values[0] if len(values) == 1 else ""


def _tokens(line: str) -> list[str] | None:
    """The shell words and operators of ``line``, or None if it is not plain enough to read."""
    if not line.strip() or any(marker in line for marker in _UNSURE_TEXT):
        return None
    lexer = shlex.shlex(line.replace("\n", " ; "), posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes
        return None


def programs_in(line: str) -> tuple[str, ...] | None:
    """Every program ``line`` starts, in order; None when that cannot be known for sure."""
    tokens = _tokens(line)
    if tokens is None:
        return None
    programs: list[str] = []
    expect_program, skip_target = True, False
    for token in tokens:
        if skip_target:
            skip_target = False
            continue
        if token in _SEPARATORS:
            expect_program = True
            continue
        if token in _REDIRECTIONS:
            skip_target = True
            continue
        if not expect_program:
            if programs and program_name(programs[-1]) == "find" and token in _FIND_EXEC:
                return None
            continue
        if "=" in token and token.split("=", 1)[0].isidentifier():
            continue  # NAME=value before the program
        if (
            token in _KEYWORDS
            or not token
            or _WILD.intersection(token)
            or program_name(token) in _LAUNCHERS
        ):
            return None
        programs.append(token)
        expect_program = False
    if skip_target or (expect_program and programs and tokens[-1] not in (";", "&")):
        return None  # a dangling redirection or operator: not a complete command line
    return tuple(programs) if programs else None


def program_name(program: str) -> str:
    """The name a restricted list compares: ``/bin/rm`` and ``rm`` are both ``rm``."""
    return posixpath.basename(program)


def normalised_path(path: str) -> str | None:
    """A relative path inside the sandbox in normal form, or None if it could leave it."""
    if not path or "\0" in path:
        return None
    normal = posixpath.normpath(path.lstrip("/") if path.startswith("/sandbox/") else path)
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        return None
    return normal


def under_prefix(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or inside it, compared by whole path components."""
    normal, base = normalised_path(path), normalised_path(prefix.rstrip("/") or ".")
    if normal is None or base is None:
        return False
    return base in (".", normal) or normal.startswith(base + "/")


class GrantPattern(BaseModel):
    """What an approve-for-the-session grant covers: one tool, and calls shaped like the one
    approved (the same programs, the same directory, the same namespace, or, when no shape
    can be read, exactly the same arguments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    match: Literal["programs", "directory", "namespace", "exact"]
    programs: tuple[str, ...] = ()
    directory: str = ""
    namespace: str = ""
    exact_hash: str = ""

    def describe(self) -> str:
        if self.match == "programs":
            return f"{self.tool} running {' | '.join(self.programs)}"
        if self.match == "directory":
            return f"{self.tool} in directory '{self.directory or '.'}'"
        if self.match == "namespace":
            return f"{self.tool} in namespace '{self.namespace}'"
        return f"{self.tool} with exactly these arguments"


def grant_pattern(
    kind: str, tool: str, arguments: Mapping[str, str], namespace: str
) -> GrantPattern:
    """The pattern a session grant made from this (approved) call covers."""
    if tool == "command_exec":
        programs = programs_in(command_line(arguments))
        if programs is not None:
            return GrantPattern(tool=tool, match="programs", programs=programs)
    elif tool == "file_write":
        path = normalised_path(arguments.get("path", ""))
        if path is not None:
            return GrantPattern(tool=tool, match="directory", directory=posixpath.dirname(path))
    elif tool in ("vector_query", "memory"):
        chosen = arguments.get("namespace") or namespace
        return GrantPattern(tool=tool, match="namespace", namespace=chosen)
    return GrantPattern(tool=tool, match="exact", exact_hash=arguments_hash(kind, tool, arguments))


def grant_covers(
    pattern: GrantPattern, kind: str, tool: str, arguments: Mapping[str, str], namespace: str
) -> bool:
    """True when a new call falls under the grant's pattern (exact program words only)."""
    if pattern.tool != tool:
        return False
    if pattern.match == "programs":
        return programs_in(command_line(arguments)) == pattern.programs
    if pattern.match == "directory":
        path = normalised_path(arguments.get("path", ""))
        return path is not None and posixpath.dirname(path) == pattern.directory
    if pattern.match == "namespace":
        return (arguments.get("namespace") or namespace) == pattern.namespace
    return arguments_hash(kind, tool, arguments) == pattern.exact_hash
