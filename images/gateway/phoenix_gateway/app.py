"""The gateway's FastAPI app factory: one app per settings object, no import-time state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from phoenix_common.errors import PhoenixError
from phoenix_gateway import observability
from phoenix_gateway.auth import Authenticator
from phoenix_gateway.routes import chat_ws, console, health, proxy, telemetry
from phoenix_gateway.settings import GatewaySettings

# Many browsers may hold a telemetry stream open at once; each holds one connection.
TELEMETRY_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=20)


def create_app(settings: GatewaySettings, authenticator: Authenticator | None = None) -> FastAPI:
    """The gateway app; the keys file is read here, so a broken one fails at startup."""
    authenticator = authenticator or Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.upstream_timeout_seconds
        async with (
            httpx.AsyncClient(base_url=settings.orchestrator_url, timeout=timeout) as orchestrator,
            httpx.AsyncClient(
                base_url=settings.telemetry_url,
                # No read timeout: an SSE stream is open-ended by design.
                timeout=httpx.Timeout(min(timeout, 10.0), read=None),
                limits=TELEMETRY_LIMITS,
            ) as telemetry_client,
        ):
            HTTPXClientInstrumentor.instrument_client(orchestrator)
            app.state.orchestrator = orchestrator
            app.state.telemetry = telemetry_client
            yield

    app = FastAPI(
        title="phoenix-gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    for router in (health.router, chat_ws.router, proxy.router, telemetry.router, console.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(console.STATIC_DIR)), name="static")

    @app.exception_handler(PhoenixError)
    async def phoenix_error(_: Request, err: PhoenixError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.http_status)

    observability.instrument(app, "gateway")
    return app
