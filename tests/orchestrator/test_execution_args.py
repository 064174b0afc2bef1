"""How an approved tool call's named arguments become ExecutionRequest.args."""

from __future__ import annotations

import pytest

from phoenix_orchestrator.tool_args import execution_args, missing_args


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"cmd": "ls -la", "command": "other"}, ["ls -la"]),
        ({"command": "uptime", "cmdline": "other"}, ["uptime"]),
        ({"cmdline": "df -h"}, ["df -h"]),
        ({"shell": "whoami"}, ["whoami"]),
        ({"a": "1", "b": "2"}, [""]),
        ({}, [""]),
    ],
)
def test_command_exec_gets_one_command_line_as_the_original_chose_it(
    args: dict[str, str], expected: list[str]
) -> None:
    assert execution_args("command_exec", args) == expected


def test_file_write_gets_path_then_content() -> None:
    args = {"content": "hello", "path": "notes/a.txt"}
    assert execution_args("file_write", args) == ["notes/a.txt", "hello"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"query": "vault"}, ["vault"]),
        ({"query": "vault", "namespace": "intel"}, ["vault", "intel"]),
        ({"query": "vault", "top_k": "5"}, ["vault", "", "5"]),
    ],
)
def test_vector_query_gets_query_namespace_top_k(args: dict[str, str], expected: list[str]) -> None:
    assert execution_args("vector_query", args) == expected


def test_unknown_tools_keep_sorted_key_value_strings() -> None:
    assert execution_args("other", {"b": "2", "a": "1"}) == ["a=1", "b=2"]


@pytest.mark.parametrize(
    ("tool", "args", "missing"),
    [
        ("command_exec", {"cmd": "  "}, ["cmd"]),
        ("command_exec", {"cmd": "ls"}, []),
        ("file_write", {"path": "a"}, ["content"]),
        ("vector_query", {"namespace": "n"}, ["query"]),
        ("vector_query", {"query": "q"}, []),
    ],
)
def test_incomplete_calls_are_named(tool: str, args: dict[str, str], missing: list[str]) -> None:
    assert missing_args(tool, args) == missing
