"""``phoenix-gateway``: serve the gateway; ``phoenix-gateway telemetry``: the telemetry producer."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError

from phoenix_common import logging as phoenix_logging
from phoenix_common.errors import PhoenixError
from phoenix_common.settings import config_error_message
from phoenix_common.telemetry import configure_tracing
from phoenix_gateway.observability import redact_server_logs
from phoenix_gateway.settings import GatewaySettings, TelemetrySettings, from_environment

logger = logging.getLogger(__name__)


def _serve_gateway() -> int:
    from phoenix_gateway.app import create_app  # noqa: PLC0415 - after logging is set up

    settings = from_environment(GatewaySettings)
    phoenix_logging.configure(settings, "gateway")
    redact_server_logs()
    configure_tracing(settings, "gateway")
    try:
        app = create_app(settings)
    except PhoenixError as err:
        logger.error("cannot start: %s", err)
        return 2
    logger.info(
        "gateway listening",
        extra={
            "host": settings.host,
            "port": settings.port,
            "orchestrator": settings.orchestrator_url,
        },
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        ws_max_size=settings.ws_max_message_bytes,
        timeout_graceful_shutdown=5,
    )
    return 0


def _serve_telemetry() -> int:
    from phoenix_gateway.telemetry.app import create_app  # noqa: PLC0415

    settings = from_environment(TelemetrySettings)
    phoenix_logging.configure(settings, "telemetry")
    configure_tracing(settings, "telemetry")
    logger.info("telemetry listening", extra={"host": settings.host, "port": settings.port})
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phoenix-gateway", description=__doc__)
    parser.add_argument("process", nargs="?", choices=["gateway", "telemetry"], default="gateway")
    args = parser.parse_args(argv)
    try:
        return _serve_telemetry() if args.process == "telemetry" else _serve_gateway()
    except ValidationError as err:
        print(config_error_message("gateway", err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
