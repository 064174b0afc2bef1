"""Approval decisions sent as chat messages, in the original UI's wording."""

from __future__ import annotations

import pytest

from phoenix_orchestrator.approvals.messages import ApprovalMessage, parse


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("[TOOL_EXECUTED] command_exec - CONFIRMED", ApprovalMessage("tool", True, "command_exec")),
        ("  [TOOL_EXECUTED]   file_write-CONFIRMED ", ApprovalMessage("tool", True, "file_write")),
        ("[TOOL_DENIED] command_exec", ApprovalMessage("tool", False, "command_exec")),
        ("[MEMORY_SHOWN] 1f0c-77", ApprovalMessage("memory", True, "1f0c-77")),
        ("[MEMORY_DENIED] abc", ApprovalMessage("memory", False, "abc")),
        ("[MEMORY_DENIED] abc extra words", ApprovalMessage("memory", False, "abc", "extra words")),
        (
            "[MEMORY_DENIED] abc - not that one",
            ApprovalMessage("memory", False, "abc", "not that one"),
        ),
        (
            "[TOOL_DENIED] command_exec - not on production",
            ApprovalMessage("tool", False, "command_exec", reason="not on production"),
        ),
        ("[MEMORY_SHOWN]", ApprovalMessage("memory", True, "")),
        ("[CONFIG_RESPONSE] key=value", ApprovalMessage("config", True, "key=value")),
        ("[CONFIG_DENIED] key", ApprovalMessage("config", False, "key")),
    ],
)
def test_decisions_and_denial_reasons_are_recognised(
    message: str, expected: ApprovalMessage
) -> None:
    assert parse(message) == expected


@pytest.mark.parametrize(
    "message", ["search memory", "please [TOOL_EXECUTED] x", "[UNKNOWN] x", "[tool_executed] x"]
)
def test_ordinary_messages_are_not_decisions(message: str) -> None:
    assert parse(message) is None
