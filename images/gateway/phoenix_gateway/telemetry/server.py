"""Start the telemetry producer: settings, logging, the server. Nothing else is imported."""

from __future__ import annotations

import logging
import sys

from phoenix_common import logging as phoenix_logging
from phoenix_common.asgi import serve
from phoenix_gateway.telemetry.app import create_app
from phoenix_gateway.telemetry.settings import TelemetryConfigError, TelemetrySettings

logger = logging.getLogger(__name__)


def main() -> int:
    try:
        settings = TelemetrySettings.from_environment()
    except TelemetryConfigError as err:
        print(err.message(), file=sys.stderr)
        return 2
    phoenix_logging.configure(settings, "telemetry")
    logger.info("telemetry listening", extra={"host": settings.host, "port": settings.port})
    serve(create_app(settings), host=settings.host, port=settings.port, graceful_shutdown_seconds=2)
    return 0
