"""Each component's settings: its env ConfigMap, Secret-backed env vars and config hash.

Non-secret settings go into one ConfigMap per component (``<twin>-<component>-env``,
read with ``envFrom``) so a spec change touches only the components that read it.
The config hash of a component covers everything its pods read that is not in
the pod template itself (the ConfigMap data, the Secret references, the tools
policy); it is stamped on the pod template, so exactly the components whose
configuration changed roll.
"""

from __future__ import annotations

import json
from typing import Any

from phoenix_operator import naming
from phoenix_operator.api import Component, SecretKeyRef, Twin, duration_seconds
from phoenix_operator.render.common import Manifest, RenderContext, metadata, stable_hash

# The tools Pod's writable emptyDir, and the service's SANDBOX_DIR inside it: the service
# creates that directory and chmods it 0711, which only its owner may do, and the emptyDir
# itself belongs to the kubelet (root in the Pod's user namespace), not to uid 10001.
SANDBOX_VOLUME_DIR = "/sandbox"
SANDBOX_DIR = f"{SANDBOX_VOLUME_DIR}/root"
TOOLS_POLICY_DIR = "/etc/phoenix/tools"
TOOLS_POLICY_KEY = "policy.json"
# The gateway reads a directory of one file per twin id holding its key(s): the
# API-key Secret is mounted there with its key renamed to the twin's name, so the
# key itself never passes through the operator or an environment variable.
GATEWAY_KEYS_DIR = "/etc/phoenix/gateway-keys"
# The console-session signing key, shared by every gateway replica (a mounted Secret).
GATEWAY_SESSION_DIR = "/etc/phoenix/gateway-session"
# The orchestrator's approval store (SQLite) lives on its PersistentVolumeClaim.
ORCHESTRATOR_STATE_DIR = "/var/lib/phoenix/orchestrator"


def qdrant_url(twin: Twin, ctx: RenderContext) -> str:
    return twin.spec.memory.qdrant.url or ctx.default_qdrant_url


def service_url(twin: Twin, component: Component) -> str:
    """A sibling's address as its callers read it: ``http://<Service>:<port>``.

    The short name resolves through the Pod's DNS search path to the Service in
    the twin's own namespace (the original's compose addresses had this form).
    """
    return f"http://{naming.component_name(twin, component)}:{naming.PORTS[component]}"


def telemetry_url(twin: Twin) -> str:
    """The twin's own telemetry sidecar over loopback, unless the spec names another."""
    return twin.spec.gateway.telemetry_url or f"http://127.0.0.1:{naming.TELEMETRY_PORT}"


def settings_env(twin: Twin, component: Component, ctx: RenderContext) -> dict[str, str]:
    """The non-secret environment of one component, as its ConfigMap holds it."""
    spec = twin.spec
    common = {"TWIN_NAMESPACE": twin.namespace, "TWIN_NAME": twin.name}
    if component == "gateway":
        # One ConfigMap for both containers of the pod: the gateway reads GATEWAY_* and
        # TELEMETRY_URL, the telemetry sidecar TELEMETRY_HOST/PORT.
        env = {
            "GATEWAY_PORT": str(naming.PORTS["gateway"]),
            "ORCHESTRATOR_URL": service_url(twin, "orchestrator"),
            "TELEMETRY_URL": telemetry_url(twin),
            "GATEWAY_API_KEYS_FILE": GATEWAY_KEYS_DIR,
            "GATEWAY_SESSION_SECRET_FILE": f"{GATEWAY_SESSION_DIR}/{naming.GATEWAY_SESSION_KEY}",
        }
        if not spec.gateway.telemetry_url:
            env["TELEMETRY_HOST"] = "0.0.0.0"  # noqa: S104 - the kubelet probes the pod IP
            env["TELEMETRY_PORT"] = str(naming.TELEMETRY_PORT)
        if spec.gateway.auth.jwt is not None:
            env["GATEWAY_JWT_ISSUER"] = spec.gateway.auth.jwt.issuer
            env["GATEWAY_JWT_AUDIENCE"] = spec.gateway.auth.jwt.audience
            env["GATEWAY_JWT_JWKS_URL"] = spec.gateway.auth.jwt.jwks_url
    elif component == "orchestrator":
        env = {
            "ORCHESTRATOR_HTTP_PORT": str(naming.PORTS["orchestrator"]),
            "ORCHESTRATOR_STATE_DIR": ORCHESTRATOR_STATE_DIR,
            "MEMORY_GRPC_ADDR": service_url(twin, "memory"),
            "TOOLS_GRPC_ADDR": service_url(twin, "tools"),
            "LLM_PROVIDER": spec.llm.provider,
            "OPENROUTER_MODEL": spec.llm.model,
        }
        if spec.llm.url:
            env["OPENROUTER_URL"] = spec.llm.url
        env.update(agent_env(twin))
    elif component == "memory":
        env = {
            "MEMORY_GRPC_PORT": str(naming.PORTS["memory"]),
            "MEMORY_METRICS_PORT": str(naming.METRICS_PORTS["memory"]),
            "MEMORY_BACKEND": "qdrant",
            "QDRANT_URL": qdrant_url(twin, ctx),
            "EMBEDDING_PROVIDER": spec.memory.embedding.provider,
            "EMBEDDING_MODEL_DIM": str(spec.memory.embedding.dimension),
        }
        if spec.memory.embedding.url:
            env["EMBEDDING_URL"] = spec.memory.embedding.url
        if spec.memory.embedding.model:
            env["EMBEDDING_MODEL"] = spec.memory.embedding.model
        env.update(memory_policy_env(twin, ctx))
    else:
        env = {
            "TOOLS_GRPC_PORT": str(naming.PORTS["tools"]),
            "TOOLS_METRICS_PORT": str(naming.METRICS_PORTS["tools"]),
            # The vector_query tool (allowed by default) queries the twin's memory.
            "MEMORY_GRPC_ADDR": service_url(twin, "memory"),
            # A directory the service creates below the emptyDir: it chmods its root to 0711,
            # which uid 10001 cannot do to the mount root (root-owned, group fsGroup).
            "SANDBOX_DIR": SANDBOX_DIR,
            "TOOLS_POLICY_FILE": f"{TOOLS_POLICY_DIR}/{TOOLS_POLICY_KEY}",
            "TOOLS_USE_BWRAP": "true" if spec.tools.sandbox == "bwrap" else "false",
            "TOOLS_EXEC_TIMEOUT_MS": str(spec.tools.timeout_ms),
            # sandbox: cwd is the user's explicit choice; without it the tools
            # service fails closed when bubblewrap is unavailable.
            "TOOLS_ALLOW_UNSANDBOXED": "true" if spec.tools.sandbox == "cwd" else "false",
        }
    return {**env, **common}


def agent_env(twin: Twin) -> dict[str, str]:
    """The orchestrator's approval policy, step limit, streaming and price table; and the
    tools policy, so an edited call is checked against it before a person's approval runs it."""
    spec = twin.spec
    env = {
        "APPROVAL_POLICY": spec.approvals.wire(),
        "AGENT_MAX_STEPS": str(spec.orchestrator.agent_max_steps),
        "LLM_STREAM": "true" if spec.llm.stream else "false",
        "TOOL_POLICY": tools_policy(twin),
    }
    if spec.llm.prices:
        prices = {
            model: price.model_dump(by_alias=True, mode="json")
            for model, price in spec.llm.prices.items()
        }
        env["LLM_PRICES"] = json.dumps(prices, sort_keys=True)
    return env


def memory_policy_env(twin: Twin, ctx: RenderContext) -> dict[str, str]:
    """Tenancy, per-namespace retention/dedup and backups of the memory service."""
    memory = twin.spec.memory
    tenancy = memory.qdrant.resolved_tenancy(ctx.default_qdrant_tenancy)
    env: dict[str, str] = {"MEMORY_TENANCY": tenancy}
    if memory.policies:
        policies = {
            policy.namespace: {
                key: value
                for key, value in (
                    (
                        "max_age_seconds",
                        duration_seconds(policy.max_age) if policy.max_age else None,
                    ),
                    ("max_count", policy.max_count),
                    ("dedup_threshold", policy.dedup_threshold),
                )
                if value is not None
            }
            for policy in memory.policies
        }
        env["MEMORY_NAMESPACE_POLICIES"] = json.dumps(policies, sort_keys=True)
    # A shared collection (payload tenancy) is backed up where that Qdrant is run.
    if memory.backup is not None and tenancy == "collection":
        env["MEMORY_BACKUP_INTERVAL_SECONDS"] = str(duration_seconds(memory.backup.every))
        env["MEMORY_BACKUP_KEEP"] = str(memory.backup.keep)
    return env


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def secret_env(twin: Twin, component: Component) -> list[dict[str, Any]]:
    """Env vars read from Secrets; the values never pass through the operator."""
    spec = twin.spec
    if component == "orchestrator" and spec.llm.api_key_secret_ref is not None:
        return [_secret_env("OPENROUTER_API_KEY", spec.llm.api_key_secret_ref)]
    if component == "memory":
        env = []
        if spec.memory.qdrant.api_key_secret_ref is not None:
            env.append(_secret_env("QDRANT_API_KEY", spec.memory.qdrant.api_key_secret_ref))
        if spec.memory.embedding.api_key_secret_ref is not None:
            env.append(_secret_env("EMBEDDING_API_KEY", spec.memory.embedding.api_key_secret_ref))
        return env
    return []


def gateway_session_ref(twin: Twin) -> SecretKeyRef:
    """The generated Secret key every gateway replica signs console sessions with."""
    return SecretKeyRef(name=naming.gateway_session_secret(twin), key=naming.GATEWAY_SESSION_KEY)


def gateway_api_key_ref(twin: Twin) -> SecretKeyRef:
    """The Secret key holding the gateway's API key: the user's, or the generated one."""
    return twin.spec.gateway.auth.api_key_secret_ref or SecretKeyRef(
        name=naming.gateway_api_key_secret(twin), key=naming.GATEWAY_API_KEY
    )


def tools_policy(twin: Twin) -> str:
    """The tools policy file (JSON) the tools service reads from TOOLS_POLICY_FILE.

    In the tools service's format (docs/tools.md): one entry, ``"*"``, for every
    twin id served by this PhoenixTwin's stack. Timeout and sandbox mode are env.
    """
    policy = twin.spec.tools.policy
    return json.dumps(
        {
            "restricted": list(policy.restricted),
            "twins": {"*": {"allowed": list(policy.allowed), "programs": list(policy.programs)}},
        },
        indent=2,
        sort_keys=True,
    )


def env_configmap(twin: Twin, component: Component, ctx: RenderContext) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            twin, naming.env_configmap(twin, component), naming.component_labels(twin, component)
        ),
        "data": settings_env(twin, component, ctx),
    }


def tools_policy_configmap(twin: Twin) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            twin, naming.tools_policy_configmap(twin), naming.component_labels(twin, "tools")
        ),
        "data": {TOOLS_POLICY_KEY: tools_policy(twin)},
    }


def config_hash(twin: Twin, component: Component, ctx: RenderContext) -> str:
    """Hash of what a component's pods read outside their template; changes roll them."""
    inputs: dict[str, Any] = {
        "env": settings_env(twin, component, ctx),
        "secrets": secret_env(twin, component),
    }
    if component == "tools":
        inputs["policy"] = tools_policy(twin)
    return stable_hash(inputs)
