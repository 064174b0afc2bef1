"""Wiring: build the embedder, the store and the Archive from settings; run the gRPC server.

``start`` takes ready parts, so tests build a server around a shared embedder
and a store of their choosing on 127.0.0.1:0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health
from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_fixed
from tenacity import retry_if_exception_type as retry_if

from phoenix_common import grpc_server
from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_common.stubs import memory_pb2_grpc
from phoenix_memory import heartbeat
from phoenix_memory.archive import Archive
from phoenix_memory.embed.base import Embedder
from phoenix_memory.embed.batching import BatchingEmbedder
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.embed.openai import OpenAIEmbedder
from phoenix_memory.servicer import SERVICE_NAME, MemoryServicer
from phoenix_memory.settings import MemorySettings
from phoenix_memory.store.base import MemoryStore
from phoenix_memory.store.edge import EdgeStore

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)


async def build_embedder(settings: MemorySettings) -> Embedder:
    """The configured embedder, loaded and checked against EMBEDDING_MODEL_DIM.

    Raises InvalidInput on a dimension mismatch (a configuration error) and
    DependencyUnavailable when a remote embedding service cannot be reached.
    """
    inner: Embedder
    if settings.embedding_provider == "openai":
        assert settings.embedding_url is not None  # noqa: S101 - narrowing: settings check it
        inner = await OpenAIEmbedder.connect(
            str(settings.embedding_url),
            model=settings.embedding_model,
            api_key=(
                settings.embedding_api_key.get_secret_value()
                if settings.embedding_api_key
                else None
            ),
            timeout_s=settings.embedding_timeout_s,
        )
    else:
        try:
            inner = await LocalEmbedder.load(batch_size=settings.embedding_batch_size)
        except FileNotFoundError as err:  # the model wheel is missing
            raise InvalidInput(str(err)) from err
    if inner.dim != settings.embedding_model_dim:
        await inner.close()
        raise InvalidInput(
            f"EMBEDDING_MODEL_DIM={settings.embedding_model_dim} but {inner.description} "
            f"produces {inner.dim}-dimensional vectors; set EMBEDDING_MODEL_DIM={inner.dim}"
        )
    return BatchingEmbedder(inner, max_batch=settings.embedding_batch_size)


def build_store(settings: MemorySettings) -> MemoryStore:
    """The backend MEMORY_BACKEND names; nothing is contacted yet."""
    if settings.backend == "edge":
        return EdgeStore(settings.data_dir)
    # Imported only for this backend: qdrant-client costs ~47 MiB of RSS (its models).
    from phoenix_memory.store.qdrant_server import QdrantServerStore  # noqa: PLC0415 - only for this backend, see above

    return QdrantServerStore.connect(
        str(settings.qdrant_url),
        api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
        timeout_s=settings.qdrant_timeout_s,
    )


async def wait_for_store(store: MemoryStore, *, attempts: int, delay_s: float) -> None:
    """Ping ``store`` up to ``attempts`` times, ``delay_s`` apart; else DependencyUnavailable."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_fixed(delay_s),
            retry=retry_if(DependencyUnavailable),
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    logger.warning(
                        "storage not reachable yet, retrying",
                        extra={"attempt": attempt.retry_state.attempt_number, "of": attempts},
                    )
                await store.ping()
    except RetryError as err:
        raise DependencyUnavailable(
            f"{store.description} did not answer after {attempts} attempts "
            f"{delay_s:g}s apart; is it running and is QDRANT_URL right?"
        ) from err


async def enforce_retention(archive: Archive, *, interval_s: float) -> None:
    """Apply the namespaces' retention policies every ``interval_s`` until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await archive.enforce_retention()
        except DependencyUnavailable as err:
            logger.warning("retention run skipped: %s", err)


@dataclass
class MemoryServer:
    """A started gRPC server around one Archive, with its background tasks."""

    server: grpc.aio.Server
    port: int
    archive: Archive
    checker: health.aio.HealthServicer
    tasks: list[asyncio.Task[None]]

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` until the server stops (retention, backups)."""
        self.tasks.append(asyncio.create_task(work))

    async def stop(self, grace_s: float = 2.0) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.checker.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        await self.archive.close()


async def start(
    archive: Archive,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    heartbeat_interval_s: float | None = 15.0,
    interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (),
    tracer_provider: TracerProvider | None = None,
) -> MemoryServer:
    """Serve ``archive`` on host:port (0 picks a free port) and report SERVING.

    With a ``tracer_provider`` (configure_tracing's, when spans are exported) each call
    is a server span continuing the caller's trace; without one no tracing interceptor
    runs (with no provider its spans would be no-ops, yet cost every call a wrapper).
    """
    server = grpc_server.new_server(interceptors=interceptors, tracer_provider=tracer_provider)
    add_servicer: Any = memory_pb2_grpc.add_MemoryServiceServicer_to_server  # untyped stub
    add_servicer(MemoryServicer(archive), server)
    checker = grpc_server.add_standard_services(server, [SERVICE_NAME])
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:  # grpc's way of saying the bind failed
        raise InvalidInput(
            f"cannot listen on {host}:{port} (MEMORY_GRPC_HOST/MEMORY_GRPC_PORT); "
            "is the port in use?"
        ) from err
    await server.start()
    await grpc_server.set_serving(checker, [SERVICE_NAME], True)

    async def on_change(healthy: bool) -> None:
        await grpc_server.set_serving(checker, [SERVICE_NAME], healthy)

    running = MemoryServer(server, bound, archive, checker, [])
    if heartbeat_interval_s is not None:
        running.run_in_background(
            heartbeat.watch(archive.store, interval_s=heartbeat_interval_s, on_change=on_change)
        )
    return running
