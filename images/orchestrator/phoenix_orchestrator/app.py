"""``create_app(settings)``: the orchestrator's FastAPI app, with no import-time state.

The lifespan opens the approval store, the LLM HTTP client (only when an LLM
provider is configured) and the lazily connecting gRPC backends, and closes
them on shutdown. Errors become JSON in the ``ChatResponse`` shape with
``status: "error"`` and a non-2xx code: 422 bad input, 404/409/410 approval
state, 503/504 dependencies; an unexpected error is a generic 500.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from phoenix_common import __version__
from phoenix_common.errors import PhoenixError
from phoenix_orchestrator.api import ChatResponse, ErrorInfo
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.backends import Backends
from phoenix_orchestrator.chat import ChatService, Clock
from phoenix_orchestrator.execution import Executor
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning.llm import LLMPlanner
from phoenix_orchestrator.planning.planner import Planner
from phoenix_orchestrator.routes import approvals, chat, health, metrics
from phoenix_orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: OrchestratorSettings, *, clock: Clock = _utc_now) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts (and gRPC until first use)."""
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ApprovalStore(settings.database_path)
        backends = Backends(settings, app_metrics)
        llm_client: httpx.AsyncClient | None = None
        llm: LLMPlanner | None = None
        if settings.uses_llm:
            llm_client = httpx.AsyncClient(timeout=settings.llm_timeout_seconds)
            HTTPXClientInstrumentor.instrument_client(llm_client)
            llm = LLMPlanner(llm_client, settings)
        planner = Planner(llm, fallback=settings.llm_fallback_to_deterministic, metrics=app_metrics)
        app.state.chat = ChatService(
            settings=settings,
            planner=planner,
            store=store,
            executor=Executor(backends, settings),
            metrics=app_metrics,
            clock=clock,
        )
        app.state.store = store
        await app.state.chat.sweep()
        logger.info(
            "orchestrator ready",
            extra={
                "planner": settings.llm_provider,
                "model": settings.openrouter_model if settings.uses_llm else None,
                "memory": settings.memory_grpc_addr,
                "tools": settings.tools_grpc_addr,
                "state_db": str(settings.database_path),
            },
        )
        try:
            yield
        finally:
            await backends.close()
            if llm_client is not None:
                await llm_client.aclose()
            store.close()

    app = FastAPI(title="phoenix-orchestrator", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = app_metrics
    for router in (health.router, chat.router, approvals.router, metrics.router):
        app.include_router(router)
    install_error_handlers(app)
    install_request_metrics(app, app_metrics)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    return app


def error_reply(status_code: int, code: str, message: str, **extra: object) -> JSONResponse:
    """An error in the ``ChatResponse`` shape, so clients read one JSON form."""
    actions = extra.pop("actions_taken", [])
    body = ChatResponse(
        response=message,
        job_id=str(uuid.uuid4()),
        actions_taken=list(actions) if isinstance(actions, list) else [],
        status="error",
        error=ErrorInfo(code=code, message=message, **extra),
    )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status_code)


def install_error_handlers(app: FastAPI) -> None:
    async def phoenix_error(_: Request, err: Exception) -> Response:
        assert isinstance(err, PhoenixError)
        code = getattr(err, "code", type(err).__name__)
        actions = list(getattr(err, "actions_taken", []))
        return error_reply(err.http_status, code, str(err), actions_taken=actions)

    async def invalid_request(_: Request, err: Exception) -> Response:
        assert isinstance(err, RequestValidationError)
        details = [
            {
                "loc": [str(part) for part in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in err.errors()
        ]
        summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details)
        return error_reply(
            422,
            "invalid_input",
            f"Invalid request: {summary}",
            actions_taken=["invalid_request"],
            details=details,
        )

    async def unexpected(request: Request, err: Exception) -> Response:
        logger.error("unhandled error", exc_info=err, extra={"path": request.url.path})
        return error_reply(500, "internal", "Internal server error")

    app.add_exception_handler(PhoenixError, phoenix_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)


def install_request_metrics(app: FastAPI, app_metrics: Metrics) -> None:
    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        app_metrics.requests.labels(route=route, status_code=str(response.status_code)).inc()
        app_metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)
        return response
