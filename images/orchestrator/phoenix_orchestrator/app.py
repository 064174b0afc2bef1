"""``create_app(settings)``: the orchestrator's FastAPI app, with no import-time state.

The lifespan opens the approval store, finishes what a killed process left
(``runs.recover``), starts the timeout sweep and opens the LLM HTTP client (only
when an LLM provider is configured); the gRPC backends load on the first
approved run.
Errors become JSON in the ``ChatResponse`` shape with ``status: "error"``:
``/chat`` answers conversational outcomes with 200 (see ``errors``), everything
else has its status code: 422 bad input, 404/409/410 approval state on the
approvals API, 503/504 dependencies; an unexpected error is a generic 500.

Per-request cost matters (bench/chat.py): request metrics are a plain ASGI
middleware, and tracing is FastAPI's native OpenTelemetry support, switched
on only when a tracer provider is configured (one server span per request,
no operation spans), never an instrumentor wrapping every request for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.trace import TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phoenix_common import __version__
from phoenix_common.errors import PhoenixError
from phoenix_orchestrator.api import error_response
from phoenix_orchestrator.approvals.db import Database
from phoenix_orchestrator.chat import ChatService
from phoenix_orchestrator.decisions import Clock
from phoenix_orchestrator.execution import Executor
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.planning.planner import Planner
from phoenix_orchestrator.routes import approvals, chat, health, metrics
from phoenix_orchestrator.settings import OrchestratorSettings

if TYPE_CHECKING:
    import httpx

    from phoenix_orchestrator.planning.llm import LLMPlanner

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


UNTRACED_PATHS = frozenset({"/health", "/metrics"})
MAX_LABEL_SETS = 256


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def _llm_planner(
    settings: OrchestratorSettings, metrics: Metrics
) -> tuple[httpx.AsyncClient, LLMPlanner]:
    """The LLM planner and its client; imported only when an LLM provider is configured."""
    import httpx  # noqa: PLC0415 - the deterministic planner needs neither

    from phoenix_orchestrator.planning.llm import LLMPlanner  # noqa: PLC0415 - as httpx above
    from phoenix_orchestrator.planning.usage import UsageMeter  # noqa: PLC0415 - as httpx above

    client = httpx.AsyncClient(timeout=settings.llm_timeout_seconds)
    try:
        from opentelemetry.instrumentation.httpx import (  # noqa: PLC0415 - as httpx above
            HTTPXClientInstrumentor,
        )
    except ImportError:  # pragma: no cover - the orchestrator extra installs it
        pass
    else:
        HTTPXClientInstrumentor.instrument_client(client)
    meter = UsageMeter(metrics, settings.llm_prices, provider=settings.llm_provider)
    return client, LLMPlanner(client, settings, meter)


def create_app(
    settings: OrchestratorSettings,
    *,
    clock: Clock = _utc_now,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts (and gRPC until first use).

    ``tracer_provider`` defaults to the global one (``phoenix_common.telemetry``);
    tracing is on when that is a configured SDK provider.
    """
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_path)
        executor = Executor(settings, app_metrics)
        llm_client: httpx.AsyncClient | None = None
        llm: LLMPlanner | None = None
        if settings.uses_llm:
            llm_client, llm = _llm_planner(settings, app_metrics)
        planner = Planner(llm, fallback=settings.llm_fallback_to_deterministic, metrics=app_metrics)
        service = ChatService(
            settings=settings,
            planner=planner,
            db=db,
            executor=executor,
            metrics=app_metrics,
            clock=clock,
        )
        app.state.chat = service
        app.state.store = service.store
        await service.start()
        # Timeouts are resolved while the orchestrator runs, not only when it starts.
        sweeper = asyncio.create_task(service.sweep_forever(), name="approval-sweep")
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
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await service.runs.drain(settings.tools_rpc_timeout_seconds)
            await executor.close()
            if llm_client is not None:
                await llm_client.aclose()
            db.close()

    app = FastAPI(
        title="phoenix-orchestrator",
        version=__version__,
        lifespan=lifespan,
        telemetry={
            "tracer_provider": tracer_provider,
            "tracing": True,
            "metrics": False,  # Prometheus: see observability.py
            "logs": False,  # phoenix_common.logging
            "operation_spans": False,  # one server span per request is the trace's hop
            "exclude": _untraced,
        },
    )
    app.state.settings = settings
    app.state.metrics = app_metrics
    # A traced /chat is routed here (after FastAPI's own docs routes); an untraced one is
    # answered before the router (ChatShortPath, below).
    app.add_route("/chat", chat.chat, methods=["POST"], include_in_schema=False)
    for router in (health.router, approvals.router, metrics.router):
        app.include_router(router)
    _document_chat_route(app)
    install_error_handlers(app)
    # Inside the request metrics, so a short-path reply is counted like any other.
    app.add_middleware(chat.ChatShortPath, handlers=app.exception_handlers)
    app.add_middleware(RequestMetrics, metrics=app_metrics)
    return app


def _document_chat_route(app: FastAPI) -> None:
    """Add the plain ``/chat`` route to the generated OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schema.setdefault("paths", {}).setdefault("/chat", {})["post"] = chat.openapi_operation()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_reply(status_code: int, code: str, message: str, **extra: object) -> JSONResponse:
    """An error in the ``ChatResponse`` shape, so clients read one JSON form."""
    actions = extra.pop("actions_taken", [])
    details = extra.pop("details", None)
    body = error_response(
        code,
        message,
        actions_taken=list(actions) if isinstance(actions, list) else [],
        details=details if isinstance(details, list) else None,
    )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status_code)


def install_error_handlers(app: FastAPI) -> None:
    async def phoenix_error(_: Request, err: Exception) -> Response:
        assert isinstance(err, PhoenixError)  # noqa: S101 - narrowing: the handler's class
        code = getattr(err, "code", type(err).__name__)
        actions = list(getattr(err, "actions_taken", []))
        return error_reply(err.http_status, code, str(err), actions_taken=actions)

    async def invalid_request(_: Request, err: Exception) -> Response:
        assert isinstance(err, RequestValidationError)  # noqa: S101 - narrowing, as above
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


class RequestMetrics:
    """Counts and times requests by route template and status (plain ASGI: no task per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._cache: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, route = 500, "unmatched"

        async def send_and_count(message: Message) -> None:
            nonlocal status, route
            if message["type"] == "http.response.start":
                status, route = message["status"], _route_template(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            count, timing = self._children(route, status)
            count.inc()
            timing.observe(time.perf_counter() - started)

    def _children(self, route: str, status: int) -> tuple[Any, Any]:
        """The labelled counter and histogram, looked up once per (route, status)."""
        key = (route, status)
        children = self._cache.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(route=route, status_code=str(status)),
                self.metrics.request_seconds.labels(route=route),
            )
            if len(self._cache) < MAX_LABEL_SETS:  # route templates, never raw paths
                self._cache[key] = children
        return children


def _route_template(scope: Scope) -> str:
    """The matched route's template, read while the response starts (routing resets it)."""
    template = getattr(scope.get("route"), "path", None)
    if template is not None:
        return str(template)
    # A plain Starlette route (/chat, the docs) sets no template, and none of this
    # app's has path parameters: its path is its template.
    return str(scope["path"]) if "endpoint" in scope else "unmatched"
