"""The arguments of the built-in tools, in both wire shapes, read one unambiguous way.

Our orchestrator sends ``file_write`` as ``[path, content]`` and ``vector_query`` as
``[query, namespace?, top_k?]``. The original's orchestrator sends every tool
but ``command_exec`` as ``key=value`` strings sorted by key:
``["content=hi", "path=a.txt"]``. Read positionally, that wrote a file named
``content=hi`` holding ``path=a.txt`` and reported success, so both shapes are
recognised here, and anything that is neither is refused with a message:

* ``file_write`` is keyed exactly when ``args[0]`` contains ``=``: a workspace
  path never does (workdir's component rule forbids it), so no positional call
  can be mistaken for a keyed one. Keyed calls must name ``path`` and
  ``content`` once each and nothing else.
* ``vector_query`` is keyed when every argument starts with ``query=``,
  ``namespace=`` or ``top_k=`` and ``query=`` is among them. A positional query
  text that itself starts with ``query=`` is read as keyed; both readings then
  search for nearly the same words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from phoenix_common.errors import InvalidInput

_KEYED = re.compile(r"^(?P<key>[a-z_]+)=(?P<value>.*)$", re.DOTALL)
FILE_WRITE_KEYS = frozenset({"path", "content"})
VECTOR_QUERY_KEYS = frozenset({"query", "namespace", "top_k"})


@dataclass(frozen=True)
class FileWriteArgs:
    path: str
    content: str


def _keyed(args: Sequence[str], allowed: frozenset[str], tool: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for index, arg in enumerate(args):
        match = _KEYED.match(arg)
        if match is None or match["key"] not in allowed:
            raise InvalidInput(
                f"{tool} args[{index}] is not one of {sorted(allowed)} as key=value "
                f"(keyed form), and the call cannot be read positionally either"
            )
        if match["key"] in values:
            raise InvalidInput(f"{tool} names {match['key']!r} twice")
        values[match["key"]] = match["value"]
    return values


def file_write(args: Sequence[str]) -> FileWriteArgs:
    """``[path, content]`` or the original's ``["content=…", "path=…"]``."""
    if args and "=" in args[0]:
        values = _keyed(args, FILE_WRITE_KEYS, "file_write")
        missing = sorted(FILE_WRITE_KEYS - values.keys())
        if missing:
            raise InvalidInput(f"file_write (keyed form) is missing {', '.join(missing)}")
        return FileWriteArgs(values["path"], values["content"])
    if len(args) != 2:
        raise InvalidInput(
            f"file_write takes args [relative_path, content] or "
            f'["content=...", "path=..."], got {len(args)} args'
        )
    return FileWriteArgs(args[0], args[1])


def content_index(args: Sequence[str]) -> int | None:
    """Which argument holds file_write's content (it may exceed the argv size cap)."""
    if args and "=" in args[0]:
        return next((i for i, a in enumerate(args) if a.startswith("content=")), None)
    return 1 if len(args) >= 2 else None


def vector_query(args: Sequence[str]) -> list[str]:
    """The positional ``[query, namespace, top_k]`` of either shape (trailing ones may be "")."""
    keyed = bool(args) and all(
        (m := _KEYED.match(a)) is not None and m["key"] in VECTOR_QUERY_KEYS for a in args
    )
    if keyed and any(a.startswith("query=") for a in args):
        values = _keyed(args, VECTOR_QUERY_KEYS, "vector_query")
        return [values["query"], values.get("namespace", ""), values.get("top_k", "")]
    return list(args)
