"""The telemetry producer's app: ``GET /v1/telemetry/stream``, ``/health``, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from phoenix_gateway import observability
from phoenix_gateway.settings import TelemetrySettings
from phoenix_gateway.telemetry.sampler import Sampler


def create_app(settings: TelemetrySettings) -> FastAPI:
    sampler = Sampler(settings.interval_ms / 1000)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(sampler.run(), name="telemetry-sampler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="phoenix-telemetry",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"service": "phoenix-telemetry", "status": "ok"}

    @app.get("/v1/telemetry/stream")
    async def stream(request: Request) -> EventSourceResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            observability.SSE_STREAMS.labels("telemetry").inc()
            try:
                while not await request.is_disconnected():
                    sample = await sampler.next()
                    yield ServerSentEvent(
                        data=json.dumps(sample.as_dict(), separators=(",", ":")), event="metrics"
                    )
            finally:
                observability.SSE_STREAMS.labels("telemetry").dec()

        return EventSourceResponse(
            events(),
            ping=settings.keepalive_seconds,
            ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    observability.instrument(app, "telemetry")
    return app
