"""What each component of the local stack is started with (scripts/localstack.py).

``config.env`` over the process environment over ``.env`` (the original's variable
names) over run_local's defaults; each component's own addresses, ports and state
paths on top, the user's addresses when the stack honours them (``make run``), and
each secret only in the environment of the component that reads it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dotenv import dotenv_values

if TYPE_CHECKING:
    from scripts.localstack import StackConfig

# pydantic's spellings of false, so TOOLS_USE_BWRAP means here what it means to the service.
FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})
# Addresses a user (or the original's .env) may point at components of their own.
ADDRESS_VARS = ("ORCHESTRATOR_URL", "TELEMETRY_URL", "MEMORY_GRPC_ADDR", "TOOLS_GRPC_ADDR")
# Secrets go only to the component that reads them, never to the tools service,
# whose sandboxed commands must not be one /proc read away from them.
SECRET_OWNERS = {
    "OPENROUTER_API_KEY": "orchestrator",
    "QDRANT_API_KEY": "memory",
    "EMBEDDING_API_KEY": "memory",
}


def base_environment(config: StackConfig) -> dict[str, str]:
    """config.env over os.environ over ``.env`` (in the stack's cwd) over run_local's defaults."""
    env = {"PHOENIX_LOG_FORMAT": "text", "LOG_LEVEL": "info"}
    dotenv = config.cwd / ".env"
    if dotenv.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    env.update(os.environ)
    env.update(config.env)
    return env


def stack_addresses(config: StackConfig, base: Mapping[str, str]) -> dict[str, str]:
    """Where each component finds the others: the stack's own, or the user's when honoured."""
    ports = config.ports
    own = {
        "ORCHESTRATOR_URL": config.orchestrator_url,
        "TELEMETRY_URL": f"http://127.0.0.1:{ports.telemetry}",
        "MEMORY_GRPC_ADDR": f"http://127.0.0.1:{ports.memory}",
        "TOOLS_GRPC_ADDR": f"http://127.0.0.1:{ports.tools}",
    }
    if config.honour_user_addresses:
        own.update({k: base[k] for k in ADDRESS_VARS if base.get(k)})
    return own


def unsandboxed_because(base: Mapping[str, str]) -> tuple[str, str] | None:
    """Why tools run without bubblewrap (the cwd-only fallback) and what would turn it on, or
    None: bubblewrap when ``bwrap`` is on PATH, unless the user turned it off
    (``TOOLS_USE_BWRAP=false`` in ``.env`` or the environment)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not on PATH", "Install it (apt-get install bubblewrap)"
    if base.get("TOOLS_USE_BWRAP", "true").strip().lower() in FALSE_WORDS:
        return "TOOLS_USE_BWRAP is off", "Unset TOOLS_USE_BWRAP"
    return None


def component_environments(
    config: StackConfig, base: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Each component's environment; state paths and ports are always the stack's own."""
    ports, state = config.ports, config.state_dir.resolve()
    addr = stack_addresses(config, base)
    bwrap = unsandboxed_because(base) is None
    provider = base.get("LLM_PROVIDER") or (
        "openrouter" if base.get("OPENROUTER_API_KEY") else "mock"
    )
    envs = {
        "memory": {
            "MEMORY_GRPC_HOST": "127.0.0.1",
            "MEMORY_GRPC_PORT": str(ports.memory),
            "MEMORY_BACKEND": base.get("MEMORY_BACKEND", "edge"),
            "MEMORY_DATA_DIR": str(state / "memory"),
            "MEMORY_METRICS_PORT": base.get("MEMORY_METRICS_PORT", "0"),
            "TWIN_NAMESPACE": base.get("TWIN_NAMESPACE", "local"),
            "TWIN_NAME": base.get("TWIN_NAME", config.twin),
        },
        "tools": {
            "TOOLS_GRPC_HOST": "127.0.0.1",
            "TOOLS_GRPC_PORT": str(ports.tools),
            "TOOLS_METRICS_PORT": base.get("TOOLS_METRICS_PORT", "0"),
            "SANDBOX_DIR": str(config.sandbox_dir or state / "sandbox"),
            "TOOLS_USE_BWRAP": "true" if bwrap else "false",
            "TOOLS_ALLOW_UNSANDBOXED": base.get(
                "TOOLS_ALLOW_UNSANDBOXED", "false" if bwrap else "true"
            ),
            "MEMORY_GRPC_ADDR": addr["MEMORY_GRPC_ADDR"],
        },
        "orchestrator": {
            "ORCHESTRATOR_HTTP_HOST": "127.0.0.1",
            "ORCHESTRATOR_HTTP_PORT": str(ports.orchestrator),
            "MEMORY_GRPC_ADDR": addr["MEMORY_GRPC_ADDR"],
            "TOOLS_GRPC_ADDR": addr["TOOLS_GRPC_ADDR"],
            "LLM_PROVIDER": provider,
            "ORCHESTRATOR_STATE_DIR": str(state / "orchestrator"),
        },
        "telemetry": {"TELEMETRY_HOST": "127.0.0.1", "TELEMETRY_PORT": str(ports.telemetry)},
        "gateway": {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(ports.gateway),
            "ORCHESTRATOR_URL": addr["ORCHESTRATOR_URL"],
            "TELEMETRY_URL": addr["TELEMETRY_URL"],
            "GATEWAY_API_KEYS_FILE": str(config.keys_file.resolve()),
            "GATEWAY_LOCAL_CONSOLE_AUTOLOGIN": "true" if config.autologin else "false",
            "GATEWAY_LOCAL_CONSOLE_TWIN": config.twin,
        },
    }
    result = {}
    for name, own in envs.items():
        env = {k: v for k, v in base.items() if SECRET_OWNERS.get(k, name) == name}
        result[name] = {**env, **own, "OTEL_SERVICE_NAME": f"phoenix-{name}"}
    return result
