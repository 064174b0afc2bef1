"""phoenix-memory: the Neural Archive's gRPC server.

Exit codes: 0 after SIGTERM/SIGINT, 1 when a dependency (Qdrant, the embedding
service) cannot be reached at start-up, 2 on bad configuration.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

from phoenix_common import logging as phoenix_logging
from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_common.metrics import serve_metrics
from phoenix_common.settings import config_error_message
from phoenix_common.telemetry import configure_tracing
from phoenix_memory.settings import MemorySettings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger("phoenix_memory")

EXIT_UNAVAILABLE = 1
EXIT_CONFIG = 2


async def serve(settings: MemorySettings, tracer_provider: TracerProvider | None = None) -> int:
    # Imported once the settings are valid: qdrant-client and ONNX Runtime take seconds to
    # import, and a configuration error should not wait for them.
    from phoenix_memory import backup, server  # noqa: PLC0415 - after settings validate, see above
    from phoenix_memory.archive import Archive  # noqa: PLC0415 - after settings validate, see above

    store = server.build_store(settings)
    try:
        await server.wait_for_store(
            store,
            attempts=settings.qdrant_connect_attempts,
            delay_s=settings.qdrant_connect_retry_delay_ms / 1000,
        )
    except DependencyUnavailable as err:
        logger.critical("storage not available, giving up: %s", err)
        await store.close()
        return EXIT_UNAVAILABLE
    try:
        embedder = await server.build_embedder(settings)
    except (InvalidInput, DependencyUnavailable) as err:
        logger.critical("embedder not available: %s", err)
        await store.close()
        return EXIT_CONFIG if isinstance(err, InvalidInput) else EXIT_UNAVAILABLE
    archive = Archive(
        settings.twin(),
        store,
        embedder,
        tenancy=settings.tenancy,
        policies=settings.policies(),
    )
    try:
        running = await server.start(
            archive,
            host=settings.grpc_host,
            port=settings.grpc_port,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            tracer_provider=tracer_provider,
        )
    except InvalidInput as err:
        logger.critical("%s", err)
        await archive.close()
        return EXIT_CONFIG
    if any(policy.retains for policy in archive.policies.values()):
        running.run_in_background(
            server.enforce_retention(archive, interval_s=settings.retention_interval_s)
        )
    if settings.backup_interval_s:
        running.run_in_background(
            backup.schedule(
                store,
                settings.twin(),
                interval_s=settings.backup_interval_s,
                keep=settings.backup_keep,
                backup_dir=settings.backup_dir,
            )
        )
    try:
        serve_metrics(settings.metrics_port)
    except OSError as err:
        logger.critical(
            "cannot serve metrics on MEMORY_METRICS_PORT=%s: %s", settings.metrics_port, err
        )
        await running.stop()
        return EXIT_CONFIG
    logger.info(
        "phoenix-memory serving",
        extra={
            "port": running.port,
            "store": store.description,
            "embedder": embedder.description,
            "twin": f"{settings.twin_namespace}/{settings.twin_name}",
            "tenancy": settings.tenancy,
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down")
    await running.stop()
    return 0


def main() -> None:
    try:
        settings = MemorySettings.load()
    except ValidationError as err:
        sys.stderr.write(config_error_message("memory", err) + "\n")
        raise SystemExit(EXIT_CONFIG) from None
    phoenix_logging.configure(settings, "memory")
    tracer_provider = configure_tracing(settings, "memory")
    raise SystemExit(asyncio.run(serve(settings, tracer_provider)))


if __name__ == "__main__":
    main()
