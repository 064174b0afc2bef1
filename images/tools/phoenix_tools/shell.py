"""Shell lines to the commands they would run: the parser behind ``command_exec`` policy.

``command_exec`` runs ``/bin/sh -c <line>``, so policy must see every program
the line can start: each command of every list (``;`` ``&&`` ``||`` ``&``),
pipeline, subshell, brace group and command substitution. Only a small,
well-understood subset of shell is accepted; everything else (loops,
functions, heredocs, process substitution, variable assignments, expansions
in a program name, ...) is refused with the reason, because what cannot be
read here cannot be checked.

bashlex parses bash; the line runs under dash. Constructs where the two read
a line differently (``&>``, ``<(...)``, ``[[``, ``$'...'``, brace expansion in
a program name) are refused for that reason too.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

import bashlex
import bashlex.errors

MAX_COMMANDS = 32
# Redirections with one meaning in bash and dash, and no command of their own.
_REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", ">|"})
# A word is literal when it has no expansion: quoted or plain characters only.
_LITERAL_RAW = re.compile(r"""^(?:[A-Za-z0-9_./=:,+@%^-]|'[^']*'|"[^"$`\\!]*")+$""")
_SIMPLE_PARAMETER = re.compile(
    r"^\$([A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\}|[0-9#?$!*@-])$"
)
# Characters that make a line "shell" rather than an argv (SAFE_MODE refuses them).
SHELL_METACHARACTERS = frozenset(";&|<>()$`\\\n\r*?[]{}~!#")


class ShellRejected(Exception):
    """The line uses syntax the policy cannot check; the message says which."""


@dataclass(frozen=True)
class ShellCommand:
    """One simple command of a shell line.

    ``argv[i]`` is the word after quote removal, or None where the word has
    expansions whose value is only known at run time. ``argv[0]`` is never None.
    """

    argv: tuple[str | None, ...]

    @property
    def program(self) -> str:
        assert self.argv[0] is not None  # noqa: S101 - narrowing: the parser guarantees it
        return self.argv[0]


def parse(line: str) -> list[ShellCommand]:
    """Every simple command ``line`` can run, outermost first; ShellRejected if unreadable."""
    if not line.strip():
        raise ShellRejected("the shell line is empty")
    for bad, why in (("&>", "'&>' (means different things in bash and dash)"), ("[[", "'[['")):
        if bad in line:
            raise ShellRejected(f"unsupported shell syntax: {why}")
    try:
        trees = bashlex.parse(line)
    except bashlex.errors.ParsingError as err:
        raise ShellRejected(f"the shell line could not be parsed: {err}") from None
    except Exception as err:  # bashlex fails in many ways on odd input; fail closed
        raise ShellRejected(
            f"the shell line could not be parsed: {type(err).__name__}: {str(err)[:200]}"
        ) from None
    commands: list[ShellCommand] = []
    try:
        for tree in trees:
            _walk(tree, line, commands)
    except RecursionError:
        raise ShellRejected("the shell line is nested too deeply") from None
    if not commands:
        raise ShellRejected("the shell line contains no command")
    return commands


def split_plain(line: str) -> list[str]:
    """The argv of a line with no shell syntax at all (SAFE_MODE's command_exec)."""
    found = sorted({c for c in line if c in SHELL_METACHARACTERS})
    if found:
        shown = " ".join(repr(c) for c in found)
        raise ShellRejected(f"SAFE_MODE allows no shell metacharacters, found {shown}")
    try:
        argv = shlex.split(line)
    except ValueError as err:
        raise ShellRejected(f"the command line could not be split: {err}") from None
    if not argv:
        raise ShellRejected("the command line is empty")
    return argv


def _walk(node: Any, line: str, out: list[ShellCommand]) -> None:
    kind = node.kind
    if kind in ("list", "pipeline"):
        for part in node.parts:
            _walk(part, line, out)
    elif kind in ("operator", "pipe"):
        return
    elif kind == "compound":
        words = [p.word for p in node.list if p.kind == "reservedword"]
        if words not in (["(", ")"], ["{", "}"]):
            inner = [p.kind for p in node.list if p.kind != "reservedword"]
            shown = next((w for w in words if w not in "(){}"), inner[0] if inner else "?")
            raise ShellRejected(f"unsupported shell syntax: '{shown}' (only ( ) and {{ }} groups)")
        for part in node.list:
            if part.kind != "reservedword":
                _walk(part, line, out)
    elif kind == "command":
        _command(node, line, out)
    else:
        raise ShellRejected(f"unsupported shell syntax: {kind}")


def _command(node: Any, line: str, out: list[ShellCommand]) -> None:
    argv: list[str | None] = []
    for part in node.parts:
        if part.kind == "assignment":
            raise ShellRejected(
                f"variable assignments are not allowed ({_raw(part, line)!r}): "
                "they can change how the next program runs (LD_PRELOAD, PATH, ...)"
            )
        if part.kind == "redirect":
            _redirect(part, line, out)
        elif part.kind == "word":
            argv.append(_word(part, line, out, program=not argv))
        else:
            raise ShellRejected(f"unsupported shell syntax: {part.kind}")
    if not argv:
        raise ShellRejected("a command consists only of redirections")
    out.append(ShellCommand(tuple(argv)))
    if len(out) > MAX_COMMANDS:
        raise ShellRejected(f"the shell line runs more than {MAX_COMMANDS} commands")


def _redirect(node: Any, line: str, out: list[ShellCommand]) -> None:
    if node.type not in _REDIRECTS:
        raise ShellRejected(f"unsupported redirection {node.type!r}")
    target = node.output
    if not isinstance(target, int) and getattr(target, "kind", None) == "word":
        _word(target, line, out, program=False)


def _word(node: Any, line: str, out: list[ShellCommand], *, program: bool) -> str | None:
    raw = _raw(node, line)
    parts = getattr(node, "parts", None) or []
    for part in parts:
        if part.kind == "commandsubstitution":
            _walk(part.command, line, out)
        elif part.kind == "processsubstitution":
            raise ShellRejected("process substitution <(...) is not supported")
        elif part.kind == "parameter" and not _SIMPLE_PARAMETER.match(_raw(part, line)):
            # bashlex keeps ${x:-$(cmd)} as one opaque node: the command inside would
            # run unseen, so only plain $name / ${name} expansions are accepted.
            raise ShellRejected(
                f"only plain $name expansions are supported, got {_raw(part, line)!r}"
            )
        elif part.kind not in ("parameter", "tilde"):
            raise ShellRejected(f"unsupported shell syntax in word {raw!r}: {part.kind}")
    if program:
        if parts or not _LITERAL_RAW.match(raw):
            raise ShellRejected(
                f"a program name must be a literal word, got {raw!r} "
                "(no expansions, globs, backslashes or $'...')"
            )
        return _unquote(raw)
    if parts or not _LITERAL_RAW.match(raw):
        return None
    return _unquote(raw)


def _unquote(raw: str) -> str:
    words = shlex.split(raw)
    if len(words) != 1:
        raise ShellRejected(f"the word {raw!r} does not form one word")
    return words[0]


def _raw(node: Any, line: str) -> str:
    start, end = node.pos
    return line[start:end]


def literal_args(command: ShellCommand) -> list[str] | None:
    """The command's arguments, or None if any is only known at run time."""
    args = command.argv[1:]
    if any(a is None for a in args):
        return None
    return [a for a in args if a is not None]
