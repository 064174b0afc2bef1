"""The approval policy, command-line reading, grant patterns and tool checks: pure functions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from phoenix_orchestrator.approvals import patterns
from phoenix_orchestrator.approvals.policy import ApprovalPolicy, ApprovalRule, evaluate
from phoenix_orchestrator.tool_checks import (
    InvalidArguments,
    ToolPolicy,
    policy_refusal,
    validate_arguments,
)


def policy(**spec: object) -> ApprovalPolicy:
    return ApprovalPolicy.model_validate(spec)


@pytest.mark.parametrize(
    ("line", "programs"),
    [
        ("ls -la", ("ls",)),
        ("ls | grep x && echo ok", ("ls", "grep", "echo")),
        ("FOO=1 ls >out.txt 2>&1; cat out.txt", ("ls", "cat")),
        ("echo hello world> test.txt", ("echo",)),
        ('ls "a b" # comment ; rm x', ("ls", "rm")),
        ("find . -name '*.log'", ("find",)),
    ],
)
def test_plain_command_lines_name_every_program_they_start(
    line: str, programs: tuple[str, ...]
) -> None:
    assert patterns.programs_in(line) == programs


@pytest.mark.parametrize(
    "line",
    [
        "echo $(rm -rf x)",  # command substitution
        "echo `id`",
        "cat <(ls)",
        "${X} arg",
        "(ls)",  # subshell
        "if true; then ls; fi",  # keywords
        "env rm x",  # a launcher hides the real program
        "sudo ls",
        "find . -exec rm {} +",
        "/bin/r? x",  # a glob in the program
        "echo 'unterminated",
        "ls |",  # dangling operator
        "",
    ],
)
def test_lines_that_cannot_be_read_for_sure_name_no_programs(line: str) -> None:
    assert patterns.programs_in(line) is None


def test_the_first_matching_rule_decides_and_the_default_covers_the_rest() -> None:
    rules = policy(
        defaultAction="ask",
        timeoutSeconds=300,
        rules=[
            {"tool": "command_exec", "action": "deny", "programs": ["rm", "shutdown"]},
            {"tool": "command_exec", "action": "auto", "programs": ["ls", "cat", "echo"]},
            {"tool": "memory", "action": "auto", "timeoutSeconds": 30},
            {"tool": "file_write", "action": "auto", "pathPrefixes": ["reports/"]},
        ],
    )
    verdict = evaluate(rules, "command_exec", {"cmd": "ls | cat"}, default_timeout=600)
    assert (verdict.action, verdict.rule, verdict.timeout_seconds) == ("auto", "rules[1]", 300)
    assert (
        evaluate(rules, "command_exec", {"cmd": "rm -rf /"}, default_timeout=600).action == "deny"
    )
    assert (
        evaluate(rules, "command_exec", {"cmd": "ls; uptime"}, default_timeout=600).rule
        == "default"
    )
    memory = evaluate(rules, "memory", {"query": "x"}, default_timeout=600)
    assert (memory.action, memory.timeout_seconds) == ("auto", 30)
    inside = evaluate(rules, "file_write", {"path": "reports/q3/a.txt"}, default_timeout=600)
    outside = evaluate(rules, "file_write", {"path": "reports2/a.txt"}, default_timeout=600)
    escape = evaluate(rules, "file_write", {"path": "reports/../etc/x"}, default_timeout=600)
    assert (inside.action, outside.action, escape.action) == ("auto", "ask", "ask")


def test_an_unreadable_command_is_never_automatic_but_always_denied() -> None:
    """A command the reader cannot be sure of must not slip past a deny rule into auto."""
    rules = policy(
        defaultAction="auto",
        rules=[{"tool": "command_exec", "action": "deny", "programs": ["rm"]}],
    )
    sneaky = evaluate(rules, "command_exec", {"cmd": "env rm -rf x"}, default_timeout=60)
    assert (sneaky.action, sneaky.rule) == ("deny", "rules[0]")
    auto_only = policy(rules=[{"tool": "command_exec", "action": "auto", "programs": ["echo"]}])
    hidden = evaluate(auto_only, "command_exec", {"cmd": "echo $(rm x)"}, default_timeout=60)
    assert (hidden.action, hidden.rule) == ("ask", "default")


def test_auto_rules_match_program_words_exactly() -> None:
    rules = policy(rules=[{"tool": "command_exec", "action": "auto", "programs": ["ls"]}])
    assert evaluate(rules, "command_exec", {"cmd": "ls"}, default_timeout=60).action == "auto"
    assert evaluate(rules, "command_exec", {"cmd": "./ls"}, default_timeout=60).action == "ask"
    absolute = {"cmd": "/tmp/ls"}  # noqa: S108 - a command line under test, nothing is written
    assert evaluate(rules, "command_exec", absolute, default_timeout=60).action == "ask"


def test_timeouts_and_their_actions_come_from_the_rule_else_the_policy() -> None:
    rules = policy(
        onTimeout="deny",
        rules=[{"tool": "vector_query", "timeoutSeconds": 5, "onTimeout": "approve"}],
    )
    query = evaluate(rules, "vector_query", {"query": "x"}, default_timeout=600)
    other = evaluate(rules, "command_exec", {"cmd": "ls"}, default_timeout=600)
    assert (query.timeout_seconds, query.on_timeout) == (5, "approve")
    assert (other.timeout_seconds, other.on_timeout) == (600, "deny")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"tool": "memory", "programs": ["ls"]}, "programs applies to tool command_exec only"),
        (
            {"tool": "command_exec", "pathPrefixes": ["a"]},
            "pathPrefixes applies to tool file_write",
        ),
        ({"tool": "file_write", "pathPrefixes": ["../up"]}, "not a path inside the sandbox"),
        ({"tool": "kubectl"}, "Input should be"),
        ({"tool": "memory", "action": "maybe"}, "Input should be 'ask', 'auto' or 'deny'"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        ApprovalRule.model_validate(rule)
    assert message in str(err.value)


def test_a_grant_covers_calls_shaped_like_the_approved_one() -> None:
    ls = patterns.grant_pattern("tool", "command_exec", {"cmd": "ls -la /tmp"}, "default")
    assert (ls.match, ls.programs) == ("programs", ("ls",))
    assert patterns.grant_covers(ls, "tool", "command_exec", {"cmd": "ls reports"}, "default")
    assert not patterns.grant_covers(ls, "tool", "command_exec", {"cmd": "ls | sh"}, "default")
    assert not patterns.grant_covers(ls, "tool", "file_write", {"cmd": "ls"}, "default")
    opaque = patterns.grant_pattern("tool", "command_exec", {"cmd": "echo $(date)"}, "default")
    assert opaque.match == "exact"
    assert patterns.grant_covers(opaque, "tool", "command_exec", {"cmd": "echo $(date)"}, "d")
    assert not patterns.grant_covers(opaque, "tool", "command_exec", {"cmd": "echo $(id)"}, "d")
    notes = patterns.grant_pattern("tool", "file_write", {"path": "notes/a.md", "content": ""}, "d")
    assert (notes.match, notes.directory) == ("directory", "notes")
    assert patterns.grant_covers(notes, "tool", "file_write", {"path": "notes/b.md"}, "d")
    assert not patterns.grant_covers(notes, "tool", "file_write", {"path": "notes/x/b.md"}, "d")
    memory = patterns.grant_pattern("memory", "memory", {"query": "a"}, "ops")
    assert patterns.grant_covers(memory, "memory", "memory", {"query": "b"}, "ops")
    assert not patterns.grant_covers(memory, "memory", "memory", {"query": "b"}, "default")


def test_equal_calls_have_equal_hashes_and_any_change_shows() -> None:
    one = patterns.arguments_hash("tool", "command_exec", {"cmd": "ls"})
    assert one == patterns.arguments_hash("tool", "command_exec", {"cmd": "ls"})
    assert one != patterns.arguments_hash("tool", "command_exec", {"cmd": "ls "})
    assert one != patterns.arguments_hash("tool", "file_write", {"cmd": "ls"})
    assert len(one) == 64


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("command_exec", {"cmd": "  "}, "cmd: Value error, must be a non-empty shell command"),
        ("command_exec", {"cmd": "ls", "sudo": "yes"}, "sudo: Extra inputs are not permitted"),
        ("file_write", {"path": "../x", "content": ""}, "path: Value error, must be a relative"),
        ("file_write", {"path": "a.txt"}, "content: Field required"),
        ("vector_query", {"query": "x", "top_k": "500"}, "top_k: String should match"),
    ],
)
def test_arguments_outside_a_tools_schema_are_refused_naming_the_field(
    tool: str, arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidArguments) as err:
        validate_arguments(tool, arguments)
    assert message in str(err.value)


def test_the_originals_command_spelling_is_read_as_cmd() -> None:
    assert validate_arguments("command_exec", {"command": "uptime"}) == {"cmd": "uptime"}


def test_the_twins_tool_policy_refuses_what_the_tools_service_would() -> None:
    document = ToolPolicy.model_validate(
        {
            "restricted": ["rm", "shutdown"],
            "twins": {"*": {"allowed": ["command_exec"], "programs": ["ls", "echo", "rm"]}},
        }
    )
    assert policy_refusal(document, "t", "command_exec", {"cmd": "ls -la"}) is None
    assert policy_refusal(document, "t", "command_exec", {"cmd": "ls; /bin/rm x"}) == (
        "Command 'rm' is restricted"
    )
    assert policy_refusal(document, "t", "command_exec", {"cmd": "cat x"}) == (
        "Program 'cat' is not in the programs twin 't' may run"
    )
    assert policy_refusal(document, "t", "file_write", {"path": "a", "content": ""}) == (
        "Twin 't' is not authorized to execute 'file_write'"
    )
