"""The orchestrator and the gateway served by uvicorn on 127.0.0.1, each in a thread of its own.

Schemathesis' cases call over real HTTP (requests), synchronously, so the apps
run in their own event loops; the orchestrator talks to the fuzzing session's
real memory and tools processes, and the gateway proxies to that orchestrator.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from phoenix_gateway.app import create_app as create_gateway
from phoenix_gateway.settings import GatewaySettings
from phoenix_orchestrator.app import create_app as create_orchestrator
from phoenix_orchestrator.settings import OrchestratorSettings
from tests.fuzz.conftest import Service, free_port

START_TIMEOUT_S = 60.0
FUZZ_TWIN = "twin-fuzz"
FUZZ_KEY = "fuzz-key-for-twin-fuzz-0123456789"
OTHER_KEY = "fuzz-key-for-twin-other-012345678"


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` on a free port in a thread for the block; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def orchestrator(state_dir: Path, memory: Service, tools: Service) -> Iterator[tuple[Any, str]]:
    settings = OrchestratorSettings(
        _env_file=None,  # no developer .env in tests
        state_dir=state_dir,
        memory_grpc_addr=f"http://127.0.0.1:{memory.port}",
        tools_grpc_addr=f"http://127.0.0.1:{tools.port}",
        memory_rpc_timeout_seconds=60.0,
        tools_rpc_timeout_seconds=60.0,
        llm_provider="mock",
        log_format="text",
    )
    app = create_orchestrator(settings)
    with served(app) as url:
        yield app, url


@contextmanager
def gateway(keys_file: Path, orchestrator_url: str, **limits: Any) -> Iterator[tuple[Any, str]]:
    keys_file.write_text(json.dumps({FUZZ_TWIN: FUZZ_KEY, "twin-other": OTHER_KEY}))
    settings = GatewaySettings(
        _env_file=None,  # no developer .env in tests
        api_keys_file=keys_file,
        orchestrator_url=orchestrator_url,
        telemetry_url=orchestrator_url,  # no producer: the stream answers 502, never 5xx from us
        upstream_timeout_seconds=60.0,
        log_format="text",
        **limits,
    )
    app = create_gateway(settings)
    with served(app) as url:
        yield app, url
