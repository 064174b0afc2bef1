"""LLMAction: the planner's decision is parsed whole or rejected."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from phoenix_orchestrator.actions import (
    ActionMemory,
    ActionResponse,
    ActionTool,
    action_json_schema,
    dump_action,
    parse_action,
)


def test_each_variant_parses_from_the_original_json_form() -> None:
    memory = parse_action('{"action_type":"ActionMemory","details":{"query":"vault"}}')
    tool = parse_action(
        '{"action_type":"ActionTool","details":{"tool_name":"command_exec","args":{"cmd":"ls"}}}'
    )
    reply = parse_action('{"action_type":"ActionResponse","details":{"content":"hi"}}')
    assert isinstance(memory, ActionMemory)
    assert memory.details.query == "vault"
    assert isinstance(tool, ActionTool)
    assert tool.details.args == {"cmd": "ls"}
    assert isinstance(reply, ActionResponse)
    assert reply.details.content == "hi"


def test_dump_round_trips_to_the_same_json_form() -> None:
    raw = '{"action_type":"ActionTool","details":{"tool_name":"file_write","args":{"path":"a"}}}'
    assert json.loads(dump_action(parse_action(raw))) == json.loads(raw)


def test_scalar_argument_values_become_strings() -> None:
    """Defect 13: an LLM answering {"count": 3} no longer fails planning."""
    tool = parse_action(
        '{"action_type":"ActionTool","details":{"tool_name":"vector_query",'
        '"args":{"top_k":3,"exact":true,"score":0.5,"query":"x"}}}'
    )
    assert isinstance(tool, ActionTool)
    assert tool.details.args == {"top_k": "3", "exact": "true", "score": "0.5", "query": "x"}


@pytest.mark.parametrize("value", ["null", "[1, 2]", '{"nested": "x"}'])
def test_non_scalar_argument_values_are_rejected(value: str) -> None:
    raw = (
        '{"action_type":"ActionTool","details":{"tool_name":"command_exec",'
        f'"args":{{"cmd":{value}}}}}}}'
    )
    with pytest.raises(ValidationError):
        parse_action(raw)


@pytest.mark.parametrize(
    "raw",
    [
        '{"action_type":"ActionMemory","details":{"query":"x"},"confidence":0.9}',
        '{"action_type":"ActionMemory","details":{"query":"x","limit":5}}',
        '{"action_type":"ActionSelfImprove","details":{"new_prompt":"obey me"}}',
        '{"action_type":"ActionBuildTool","details":{"tool_name":"t","tool_code":"x"}}',
        '{"details":{"content":"no tag"}}',
        '{"action_type":"ActionResponse","details":{"content":""}}',
        '{"action_type":"ActionResponse"}',
        "I think you should search memory",
        '{"action_type":"ActionResponse","details":{"content":"hi"}',
    ],
    ids=[
        "extra-top-level-field",
        "extra-details-field",
        "self-improve-unsupported",
        "build-tool-unsupported",
        "missing-tag",
        "empty-content",
        "missing-details",
        "prose",
        "truncated-json",
    ],
)
def test_invalid_decisions_are_rejected_whole(raw: str) -> None:
    with pytest.raises(ValidationError):
        parse_action(raw)


def test_schema_for_structured_output_has_an_object_root_and_required_tags() -> None:
    schema = action_json_schema()
    assert schema["type"] == "object"
    assert len(schema["anyOf"]) == 3
    tool = schema["$defs"]["ActionTool"]
    assert tool["additionalProperties"] is False
    assert set(tool["required"]) == {"action_type", "details"}
    assert schema["$defs"]["ToolDetails"]["properties"]["args"]["additionalProperties"] == {
        "type": "string"
    }
