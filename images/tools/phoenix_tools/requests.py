"""Validation of an ExecutionRequest before policy sees it: shape, sizes, NUL bytes, twin id.

Everything here raises ``InvalidInput`` (INVALID_ARGUMENT) with a message naming
the field, the rule and what was received.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from phoenix_common.errors import InvalidInput
from phoenix_tools import tool_args

TWIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
MAX_COMMAND_BYTES = 4096
MAX_ARGS = 1024
MAX_ARGV_BYTES = 128 * 1024
MAX_FILE_WRITE_BYTES = 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_ID_BYTES = 256


@dataclass(frozen=True)
class ToolRequest:
    """A request that passed validation."""

    twin_id: str
    command: str
    args: tuple[str, ...]
    job_id: str
    namespace: str


def validate(
    *,
    twin_id: str,
    command: str,
    args: Sequence[str],
    job_id: str = "",
    namespace: str = "",
    metadata: Mapping[str, str] | None = None,
) -> ToolRequest:
    """Check a request's fields; file_write content may be larger than other arguments."""
    _check_twin_id(twin_id)
    if not command.strip():
        raise InvalidInput("command is required: a tool name or a program")
    _no_nul("command", command)
    if len(command.encode()) > MAX_COMMAND_BYTES:
        raise InvalidInput(f"command is longer than {MAX_COMMAND_BYTES} bytes")
    _check_args(command, args)
    for name, value in (("job_id", job_id), ("namespace", namespace)):
        _no_nul(name, value)
        if len(value.encode()) > MAX_ID_BYTES:
            raise InvalidInput(f"{name} is longer than {MAX_ID_BYTES} bytes")
    _check_metadata(metadata or {})
    return ToolRequest(twin_id, command, tuple(args), job_id, namespace)


def _check_twin_id(twin_id: str) -> None:
    if not twin_id:
        raise InvalidInput("twin_id is required")
    if not TWIN_ID.match(twin_id):
        raise InvalidInput(
            f"twin_id {twin_id[:80]!r} is invalid: use 1-63 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )


def _check_args(command: str, args: Sequence[str]) -> None:
    if len(args) > MAX_ARGS:
        raise InvalidInput(f"args has {len(args)} elements; at most {MAX_ARGS} are accepted")
    for index, arg in enumerate(args):
        _no_nul(f"args[{index}]", arg)
    sized = list(args)
    content = tool_args.content_index(sized) if command == "file_write" else None
    if content is not None:
        content_bytes = len(sized[content].encode())
        if content_bytes > MAX_FILE_WRITE_BYTES:
            raise InvalidInput(
                f"file_write content is {content_bytes} bytes; at most "
                f"{MAX_FILE_WRITE_BYTES} are accepted"
            )
        del sized[content]
    total = len(command.encode()) + sum(len(a.encode()) + 1 for a in sized)
    if total > MAX_ARGV_BYTES:
        raise InvalidInput(f"command and args total {total} bytes; at most {MAX_ARGV_BYTES}")


def _check_metadata(metadata: Mapping[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata totals {size} bytes; at most {MAX_METADATA_BYTES}")
    for key, value in metadata.items():
        _no_nul(f"metadata[{key[:40]!r}]", key + value)


def _no_nul(field: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL byte")
