"""The deterministic planner: the original's keyword rules and the built-in date reply."""

from __future__ import annotations

from datetime import date

import pytest

from phoenix_orchestrator.actions import ActionMemory, ActionResponse, ActionTool
from phoenix_orchestrator.planning import deterministic


def test_write_and_file_plans_the_demo_command_exec() -> None:
    action = deterministic.plan("Please WRITE a file for me")
    assert isinstance(action, ActionTool)
    assert action.details.tool_name == "command_exec"
    assert action.details.args == {"cmd": "echo hello world> test.txt"}


@pytest.mark.parametrize("message", ["Search for the vault", "find my notes", "What's in MEMORY?"])
def test_search_words_plan_a_memory_query_with_the_original_message(message: str) -> None:
    action = deterministic.plan(message)
    assert isinstance(action, ActionMemory)
    assert action.details.query == message


def test_write_file_wins_over_search_words() -> None:
    assert isinstance(deterministic.plan("find and write the file"), ActionTool)


def test_anything_else_is_echoed() -> None:
    action = deterministic.plan("Hello there")
    assert isinstance(action, ActionResponse)
    assert action.details.content == "I understand you said: 'Hello there'."


@pytest.mark.parametrize(
    "message",
    [
        "What date is it?",
        "what's today's date",
        "Current date please",
        "what day is it",
        "is today the date?",
    ],
)
def test_date_questions_get_todays_date(message: str) -> None:
    reply = deterministic.builtin_reply(message, date(2026, 3, 14))
    assert reply is not None
    assert reply.details.content == "Today's date is 2026-03-14 (Saturday)."


@pytest.mark.parametrize("message", ["today is sunny", "update the file", "hello"])
def test_other_messages_get_no_builtin_reply(message: str) -> None:
    assert deterministic.builtin_reply(message, date(2026, 3, 14)) is None
