"""The gateway's FastAPI app factory: one app per settings object, no import-time state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.trace import TracerProvider
from starlette.middleware.cors import CORSMiddleware

from phoenix_common.errors import PhoenixError
from phoenix_gateway import observability
from phoenix_gateway.access import AccessPolicy
from phoenix_gateway.auth import Authenticator
from phoenix_gateway.routes import chat_ws, console, health, proxy, telemetry
from phoenix_gateway.settings import GatewaySettings
from phoenix_gateway.upstream import UpstreamClient

CORS_HEADERS = ["authorization", "x-api-key", "content-type"]


def create_app(
    settings: GatewaySettings,
    authenticator: Authenticator | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The gateway app; the keys file is read here, so a broken one fails at startup.

    Tracing (FastAPI's native support: one server span per HTTP request) is on
    when ``tracer_provider`` or the global provider is a configured SDK one.
    """
    authenticator = authenticator or Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.upstream_timeout_seconds
        orchestrator = UpstreamClient(settings.orchestrator_url, timeout=timeout)
        # Only a connect/headers timeout: an SSE stream is open-ended by design.
        telemetry_client = UpstreamClient(settings.telemetry_url, timeout=min(timeout, 10.0))
        app.state.orchestrator = orchestrator
        app.state.telemetry = telemetry_client
        try:
            yield
        finally:
            await orchestrator.aclose()
            await telemetry_client.aclose()

    app = FastAPI(
        title="phoenix-gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry={
            "tracer_provider": tracer_provider,
            "tracing": True,
            "metrics": False,  # Prometheus: see metrics.py
            "logs": False,
            "operation_spans": False,
            "exclude": observability.untraced,
        },
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.access = AccessPolicy(frozenset(settings.cors_origins), settings.local_no_auth)
    for router in (health.router, chat_ws.router, proxy.router, telemetry.router, console.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(console.STATIC_DIR)), name="static")
    app.add_route("/metrics", observability.metrics_endpoint, methods=["GET"])

    @app.exception_handler(PhoenixError)
    async def phoenix_error(_: Request, err: PhoenixError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.http_status)

    app.add_middleware(observability.MetricsMiddleware, app_name="gateway")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=CORS_HEADERS,
            max_age=600,
        )
    return app
