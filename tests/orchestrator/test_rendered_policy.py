"""spec.approvals, as the operator renders it, is the policy the orchestrator enforces.

The operator and the orchestrator each model the policy (neither imports the
other); here a spec goes through the operator's rendering into the
orchestrator's own settings, and the verdicts are the ones the spec asks for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phoenix_common.errors import InvalidInput
from phoenix_operator.render import RenderContext, config
from phoenix_orchestrator.approvals.policy import evaluate
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_orchestrator.tool_checks import policy_refusal
from tests.operator.conftest import make_twin

CTX = RenderContext(
    image_prefix="registry.example/phoenix-",
    image_tag="1.2.3",
    default_qdrant_url="http://qdrant.db.svc:6334",
)

SPEC: dict[str, Any] = {
    "orchestrator": {"agentMaxSteps": 3},
    "llm": {"stream": False, "prices": {"test/model": {"inputPerMillion": 0.5,
                                                       "outputPerMillion": 1.5}}},
    "tools": {"policy": {"allowed": ["command_exec"], "programs": ["*"]}},
    "approvals": {
        "defaultAction": "ask",
        "timeoutSeconds": 300,
        "rules": [
            {"tool": "command_exec", "action": "auto", "programs": ["ls", "cat"]},
            {"tool": "file_write", "action": "ask", "pathPrefixes": ["notes/"],
             "timeoutSeconds": 60, "onTimeout": "approve"},
            {"tool": "command_exec", "action": "deny", "programs": ["curl"]},
        ],
    },
}  # fmt: skip


def settings_from(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path))
    return OrchestratorSettings(_env_file=None)


def test_the_rendered_policy_decides_as_the_spec_says(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    twin = make_twin(SPEC)
    settings = settings_from(config.settings_env(twin, "orchestrator", CTX), tmp_path, monkeypatch)
    policy = settings.approval_policy

    def verdict(tool: str, **arguments: str) -> tuple[str, str, int, str]:
        found = evaluate(policy, tool, arguments, default_timeout=600)
        return found.action, found.rule, found.timeout_seconds, found.on_timeout

    assert verdict("command_exec", cmd="ls -la") == ("auto", "rules[0]", 300, "deny")
    assert verdict("command_exec", cmd="ls | curl x") == ("ask", "default", 300, "deny")
    assert verdict("command_exec", cmd="curl http://x") == ("deny", "rules[2]", 300, "deny")
    assert verdict("file_write", path="notes/a.md", content="x") == (
        "ask",
        "rules[1]",
        60,
        "approve",
    )
    assert verdict("memory", query="q") == ("ask", "default", 300, "deny")
    assert settings.agent_max_steps == 3
    assert settings.llm_stream is False
    assert settings.llm_prices["test/model"].output_per_million == 1.5
    # The twin's tool policy reaches the orchestrator, so an edited call is checked with it.
    assert settings.tool_policy is not None
    assert policy_refusal(settings.tool_policy, "twin-x", "file_write", {"path": "a"}) is not None
    assert policy_refusal(settings.tool_policy, "twin-x", "command_exec", {"cmd": "ls"}) is None


def test_the_default_spec_asks_for_everything(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = config.settings_env(make_twin({}), "orchestrator", CTX)
    policy = settings_from(env, tmp_path, monkeypatch).approval_policy
    for tool in ("command_exec", "file_write", "vector_query", "memory"):
        assert evaluate(policy, tool, {"cmd": "ls"}, default_timeout=600).action == "ask"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"tool": "memory", "programs": ["ls"]}, "programs applies to tool command_exec only"),
        ({"tool": "file_write", "pathPrefixes": ["../etc"]}, "not a path inside the sandbox"),
        ({"tool": "file_write", "pathPrefixes": ["/etc"]}, "not a path inside the sandbox"),
        ({"tool": "shell"}, "spec.approvals.rules.0.tool"),
    ],
)
def test_a_policy_the_orchestrator_would_refuse_is_refused_by_the_operator(
    rule: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message):
        make_twin({"approvals": {"rules": [rule]}})
