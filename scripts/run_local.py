"""``make run``: the whole platform on 127.0.0.1, on embedded defaults, until Ctrl-C.

Starts, in order, each waiting for the previous one to be healthy:

1. memory (``MEMORY_BACKEND=edge``, embedded Qdrant Edge under ``.phoenix/memory``),
2. tools (bubblewrap when ``bwrap`` is on PATH, unless ``TOOLS_USE_BWRAP=false``; else the
   unsandboxed fallback, loudly),
3. orchestrator (the deterministic planner unless ``OPENROUTER_API_KEY`` is set;
   approvals under ``.phoenix/orchestrator``),
4. telemetry (``phoenix-gateway telemetry``),
5. the gateway on http://127.0.0.1:8181/, with the console logged in for loopback visitors.

A local API key is generated once into ``.phoenix/api-key`` (mode 0600) with the
gateway's keys file beside it (``PHOENIX_STATE_DIR`` moves ``.phoenix``; the
original's port variables move the ports). An existing ``.env`` is honoured (the original's
variable names, addresses included: ``ORCHESTRATOR_URL=...`` puts another orchestrator
behind our gateway); the process environment wins over it. Ctrl-C (SIGINT) or
SIGTERM stops every process group; data stays in ``.phoenix`` for the next run.

The launcher itself (``LocalStack``, scripts/localstack.py) is also what the
whole-stack tests and the chat benchmark use, on free ports and a temporary directory.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from scripts.localenv import ADDRESS_VARS, base_environment
from scripts.localstack import (
    REPO,
    LocalStack,
    Ports,
    StackConfig,
    StackError,
    tail,
)

__all__ = ["LocalStack", "Ports", "StackConfig", "main"]


def main() -> int:
    base = base_environment(StackConfig(state_dir=REPO / ".phoenix"))
    state_dir = Path(base.get("PHOENIX_STATE_DIR", REPO / ".phoenix"))
    ports = Ports(
        memory=int(base.get("MEMORY_GRPC_PORT", 50052)),
        tools=int(base.get("TOOLS_GRPC_PORT", 50054)),
        orchestrator=int(base.get("ORCHESTRATOR_HTTP_PORT", 8182)),
        telemetry=int(base.get("TELEMETRY_PORT", 8183)),
        gateway=int(base.get("GATEWAY_PORT", 8181)),
    )
    config = StackConfig(state_dir=state_dir, ports=ports, honour_user_addresses=True)
    stack = LocalStack(config)
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        stop.set()
        stack.cancelled.set()  # a start still waiting for health gives up at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(
        f"Starting PhoenixTwin from {REPO} (state in {config.state_dir}, logs in {config.log_dir})"
    )
    try:
        stack.prepare()
        for var in ADDRESS_VARS:
            if base.get(var):
                print(f"  {var}={base[var]} (yours, from the environment or .env)")
        if stop.is_set():
            return 130
        stack.start_all()  # prints each component's "ready (N s)"
        planner = stack.planner
        print(
            f"\nPhoenixTwin is up: {config.gateway_url}/\n"
            f"  twin {config.twin}, planner {planner}; the console at / logs in by itself "
            f"from this machine.\n"
            f"  API key for other clients: {config.api_key_file} "
            f"(Authorization: Bearer <key>)\n  Ctrl-C stops everything; data stays in "
            f"{config.state_dir}.",
            flush=True,
        )
        while not stop.wait(1.0):
            if gone := stack.exited():
                name, code = next(iter(gone.items()))
                print(f"\n{name} stopped (exit code {code}); last lines of its log:", flush=True)
                print(tail(config.log_dir / f"{name}.log"), flush=True)
                return 1
        print("\nStopping...", flush=True)
        return 0
    except StackError as err:
        if stop.is_set():
            return 130
        print(f"\nmake run failed: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
