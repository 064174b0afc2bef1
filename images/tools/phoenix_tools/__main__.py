"""``phoenix-tools``: read settings, start the gRPC server, serve until SIGTERM.

A configuration error (bad variable, bad policy file) prints one clear line
and exits with status 2, so a crash-looping pod shows the cause, not a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

import uvloop
from pydantic import ValidationError

from phoenix_common import grpc_server
from phoenix_common import logging as phoenix_logging
from phoenix_common.metrics import serve_metrics
from phoenix_common.settings import config_error_message
from phoenix_common.telemetry import configure_tracing
from phoenix_tools import server
from phoenix_tools.policy_store import PolicyFileError
from phoenix_tools.settings import ToolsSettings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger("phoenix_tools")
EXIT_CONFIG = 2


def load_settings() -> ToolsSettings:
    return ToolsSettings()


async def _serve(settings: ToolsSettings, tracer_provider: TracerProvider | None) -> None:
    running = await server.start(settings, tracer_provider=tracer_provider)
    logger.info(
        "phoenix-tools listening",
        extra={
            "port": running.port,
            "sandbox": running.executor.runtime.mode,
            "policy": running.executor.policies.source,
            "safe_mode": settings.safe_mode,
        },
    )
    await grpc_server.serve_until_signalled(running.server, running.checker)
    await running.executor.runtime.close()
    await running.executor.memory.close()


def main() -> int:
    try:
        settings = load_settings()
    except ValidationError as err:
        print(config_error_message("tools", err), file=sys.stderr)
        return EXIT_CONFIG
    phoenix_logging.configure(settings, "tools")
    tracer_provider = configure_tracing(settings, "tools")
    try:
        serve_metrics(settings.metrics_port)
        # uvloop: each call crosses the loop several times (gRPC's poller thread hands
        # it over, the launcher's socket, the pipes and the pidfd); bench/tools.py.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings, tracer_provider))
    except PolicyFileError as err:
        print(f"phoenix-tools: invalid policy file: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, RuntimeError) as err:
        # SANDBOX_DIR not creatable, port taken (grpc raises RuntimeError on bind), ...
        print(f"phoenix-tools: cannot start: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
