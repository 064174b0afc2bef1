"""Each component's settings and the config hash that decides which Deployments roll."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.render import RenderContext, config, workloads


def test_each_component_reads_the_variables_of_the_original_system(
    twin: Twin, ctx: RenderContext
) -> None:
    assert config.settings_env(twin, "gateway", ctx) == {
        "GATEWAY_PORT": "8181",
        "ORCHESTRATOR_URL": "http://alice-orchestrator:8182",
        "TELEMETRY_URL": "http://127.0.0.1:8183",
        "TELEMETRY_HOST": "0.0.0.0",
        "TELEMETRY_PORT": "8183",
        "GATEWAY_API_KEYS_FILE": "/etc/phoenix/gateway-keys",
        "GATEWAY_SESSION_SECRET_FILE": "/etc/phoenix/gateway-session/session-key",
        "TWIN_NAMESPACE": "team-a",
        "TWIN_NAME": "alice",
    }
    assert config.settings_env(twin, "orchestrator", ctx) == {
        "ORCHESTRATOR_HTTP_PORT": "8182",
        "ORCHESTRATOR_STATE_DIR": "/var/lib/phoenix/orchestrator",
        "MEMORY_GRPC_ADDR": "http://alice-memory:50052",
        "TOOLS_GRPC_ADDR": "http://alice-tools:50054",
        "LLM_PROVIDER": "mock",
        "OPENROUTER_MODEL": "google/gemini-2.0-flash-exp",
        "TWIN_NAMESPACE": "team-a",
        "TWIN_NAME": "alice",
    }
    assert config.settings_env(twin, "memory", ctx) == {
        "MEMORY_GRPC_PORT": "50052",
        "MEMORY_METRICS_PORT": "9152",
        "MEMORY_BACKEND": "qdrant",
        "QDRANT_URL": "http://qdrant.db.svc:6334",
        "EMBEDDING_PROVIDER": "local",
        "EMBEDDING_MODEL_DIM": "384",
        "MEMORY_TENANCY": "collection",
        "TWIN_NAMESPACE": "team-a",
        "TWIN_NAME": "alice",
    }
    assert config.settings_env(twin, "tools", ctx) == {
        "TOOLS_GRPC_PORT": "50054",
        "TOOLS_METRICS_PORT": "9154",
        "MEMORY_GRPC_ADDR": "http://alice-memory:50052",
        "SANDBOX_DIR": "/sandbox/root",
        "TOOLS_POLICY_FILE": "/etc/phoenix/tools/policy.json",
        "TOOLS_USE_BWRAP": "true",
        "TOOLS_EXEC_TIMEOUT_MS": "10000",
        "TOOLS_ALLOW_UNSANDBOXED": "false",
        "TWIN_NAMESPACE": "team-a",
        "TWIN_NAME": "alice",
    }


def test_secrets_reach_the_pods_by_reference_only(
    twin_factory: Callable[..., Twin],
) -> None:
    twin = twin_factory(
        {
            "llm": {
                "provider": "openrouter",
                "apiKeySecretRef": {"name": "llm-key", "key": "token"},
            },
            "memory": {"qdrant": {"apiKeySecretRef": {"name": "qdrant", "key": "api-key"}}},
        }
    )
    assert config.secret_env(twin, "orchestrator") == [
        {
            "name": "OPENROUTER_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "llm-key", "key": "token"}},
        }
    ]
    assert config.secret_env(twin, "memory") == [
        {
            "name": "QDRANT_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "qdrant", "key": "api-key"}},
        }
    ]
    assert config.secret_env(twin, "tools") == []


def test_the_tools_policy_file_lists_the_spec_policy(twin_factory: Callable[..., Twin]) -> None:
    twin = twin_factory({"tools": {"policy": {"allowed": ["ls"], "restricted": ["rm"]}}})
    assert json.loads(config.tools_policy(twin)) == {
        "restricted": ["rm"],
        "twins": {"*": {"allowed": ["ls"], "programs": ["*"]}},
    }


def test_the_tools_service_accepts_and_enforces_the_rendered_policy(
    twin_factory: Callable[..., Twin],
) -> None:
    """The contract between two components: the operator's file is the tools service's format."""
    from phoenix_tools.policy import PolicyOptions, evaluate
    from phoenix_tools.policy_store import parse_policy

    twin = twin_factory(
        {"tools": {"policy": {"allowed": ["command_exec"], "programs": ["ls", "cat"]}}}
    )
    policy = parse_policy(config.tools_policy(twin), source="rendered")
    options = PolicyOptions(safe_mode=False, allow_restricted=False)
    allowed = evaluate("any-twin", "command_exec", ["ls -la | cat"], policy, options)
    refused = evaluate("any-twin", "command_exec", ["ls; curl x"], policy, options)
    assert allowed.decision.allowed, allowed
    assert not refused.decision.allowed
    assert "curl" in refused.decision.rule


def test_sandbox_cwd_is_the_users_explicit_consent_to_run_unsandboxed(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    env = config.settings_env(twin_factory({"tools": {"sandbox": "cwd"}}), "tools", ctx)
    assert (env["TOOLS_USE_BWRAP"], env["TOOLS_ALLOW_UNSANDBOXED"]) == ("false", "true")


def test_an_openai_embedder_gets_its_endpoint_and_model(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory(
        {
            "memory": {
                "embedding": {
                    "provider": "openai",
                    "url": "https://emb.example/v1/embeddings",
                    "model": "text-embedding-3-small",
                    "apiKeySecretRef": {"name": "emb", "key": "key"},
                }
            }
        }
    )
    env = config.settings_env(twin, "memory", ctx)
    assert env["EMBEDDING_URL"] == "https://emb.example/v1/embeddings"
    assert env["EMBEDDING_MODEL"] == "text-embedding-3-small"


def test_an_external_telemetry_service_replaces_the_sidecar(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    env = config.settings_env(
        twin_factory({"gateway": {"telemetryUrl": "http://telemetry.obs.svc:8183"}}), "gateway", ctx
    )
    assert env["TELEMETRY_URL"] == "http://telemetry.obs.svc:8183"
    assert "TELEMETRY_PORT" not in env


def rolled(before: Twin, after: Twin, ctx: RenderContext) -> set[str]:
    """Components whose pod template differs between two renderings."""
    return {
        c
        for c in COMPONENTS
        if workloads.workload(before, c, ctx)["spec"]["template"]
        != workloads.workload(after, c, ctx)["spec"]["template"]
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"llm": {"model": "other/model"}}, {"orchestrator"}),
        ({"tools": {"policy": {"allowed": ["ls"]}}}, {"tools"}),
        ({"tools": {"timeoutMs": 500}}, {"tools"}),
        ({"memory": {"qdrant": {"url": "http://q.other.svc:6334"}}}, {"memory"}),
        # Collections are the operator's job; the memory pods read no namespace list.
        ({"memory": {"namespaces": ["default", "work"]}}, set()),
        ({"gateway": {"auth": {"apiKeySecretRef": {"name": "s", "key": "k"}}}}, {"gateway"}),
        ({"gateway": {"replicas": 3}}, set()),
        ({"orchestrator": {"replicas": 0}}, set()),
        # An external telemetry service replaces the sidecar: the gateway pod changes.
        ({"gateway": {"telemetryUrl": "http://telemetry.obs.svc:8183"}}, {"gateway"}),
        ({"memory": {"reclaimPolicy": "Delete"}}, set()),
    ],
)
def test_a_spec_change_rolls_only_the_components_that_read_it(
    twin_factory: Callable[..., Twin],
    ctx: RenderContext,
    change: dict[str, Any],
    expected: set[str],
) -> None:
    assert rolled(twin_factory({}), twin_factory(change), ctx) == expected


def test_the_config_hash_is_stable_across_renderings(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    first = config.config_hash(twin_factory({}), "memory", ctx)
    assert first == config.config_hash(twin_factory({}), "memory", ctx)
    assert len(first) == 16
