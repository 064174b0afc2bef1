"""``phoenix-gateway``: serve the gateway; ``phoenix-gateway telemetry``: the telemetry producer.

The two processes import only what each needs: the telemetry producer never
loads the gateway's web framework, pydantic or OpenTelemetry.
"""

from __future__ import annotations

import sys

USAGE = "usage: phoenix-gateway [gateway|telemetry]\n"


def _serve_gateway() -> int:
    import logging  # noqa: PLC0415 - each process imports what it needs, see above

    from pydantic import ValidationError  # noqa: PLC0415

    from phoenix_common import logging as phoenix_logging  # noqa: PLC0415
    from phoenix_common.asgi import serve  # noqa: PLC0415
    from phoenix_common.errors import PhoenixError  # noqa: PLC0415
    from phoenix_common.settings import config_error_message  # noqa: PLC0415
    from phoenix_common.telemetry import configure_tracing  # noqa: PLC0415
    from phoenix_gateway.observability import redact_server_logs  # noqa: PLC0415
    from phoenix_gateway.settings import GatewaySettings, from_environment  # noqa: PLC0415

    logger = logging.getLogger("phoenix_gateway")
    try:
        settings = from_environment(GatewaySettings)
    except ValidationError as err:
        print(config_error_message("gateway", err), file=sys.stderr)
        return 2
    phoenix_logging.configure(settings, "gateway")
    redact_server_logs()
    provider = configure_tracing(settings, "gateway")
    from phoenix_gateway.app import create_app  # noqa: PLC0415 - after logging is set up

    try:
        app = create_app(settings, tracer_provider=provider)
    except PhoenixError as err:
        logger.error("cannot start: %s", err)
        return 2
    logger.info(
        "gateway listening",
        extra={
            "host": settings.host,
            "port": settings.port,
            "orchestrator": settings.orchestrator_url,
            "local_no_auth": settings.local_no_auth,
            "cors_origins": list(settings.cors_origins),
        },
    )
    serve(
        app,
        host=settings.host,
        port=settings.port,
        websockets=True,
        ws_max_size=settings.ws_max_message_bytes,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in ([], ["gateway"]):
        return _serve_gateway()
    if args == ["telemetry"]:
        from phoenix_gateway.telemetry.server import main as serve_telemetry  # noqa: PLC0415

        return serve_telemetry()
    sys.stdout.write(USAGE) if args in (["-h"], ["--help"]) else sys.stderr.write(USAGE)
    return 0 if args in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main())
