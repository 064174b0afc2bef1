"""``phoenix-orchestrator``: read settings, set up logging and tracing, serve HTTP.

A configuration error (a bad ``ORCHESTRATOR_HTTP_PORT``, an LLM provider with
no API key, ...) prints which variable is wrong and exits with status 2.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

from phoenix_common import logging as phoenix_logging
from phoenix_common.asgi import serve
from phoenix_common.settings import config_error_message
from phoenix_common.telemetry import configure_tracing
from phoenix_orchestrator.app import create_app
from phoenix_orchestrator.settings import OrchestratorSettings

USAGE = """usage: phoenix-orchestrator

Serves POST /chat, the /v1/approvals API, GET /health and GET /metrics.
Configured by environment variables (see docs/orchestrator.md), e.g.
ORCHESTRATOR_HTTP_PORT (8182), MEMORY_GRPC_ADDR, TOOLS_GRPC_ADDR, LLM_PROVIDER
(mock|deterministic|openrouter|openai), OPENROUTER_API_KEY, OPENROUTER_MODEL,
OPENROUTER_URL, APPROVAL_TTL_SECONDS (600), ORCHESTRATOR_STATE_DIR.
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        sys.stdout.write(USAGE)
        return 0
    try:
        settings = OrchestratorSettings()
    except ValidationError as err:
        sys.stderr.write(config_error_message("orchestrator", err) + "\n")
        return 2
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        sys.stderr.write(
            f"phoenix-orchestrator: cannot use ORCHESTRATOR_STATE_DIR={settings.state_dir}: "
            f"{err.strerror}; mount a writable volume there\n"
        )
        return 2
    phoenix_logging.configure(settings, "orchestrator")
    app = create_app(settings, tracer_provider=configure_tracing(settings, "orchestrator"))
    # The gateway reuses an idle connection for up to 4 s; a longer keep-alive
    # here keeps it from ever sending on a connection this end is closing.
    serve(app, host=settings.http_host, port=settings.http_port, keep_alive_seconds=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
