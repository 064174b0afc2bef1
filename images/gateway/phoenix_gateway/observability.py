"""Prometheus metrics and OpenTelemetry instrumentation of the gateway and telemetry apps.

Metrics are module-level (prometheus_client's registry is per process) and carry
no twin ids or other tenant data. Traces: FastAPI server spans for HTTP routes,
httpx client spans (and W3C ``traceparent``) on every upstream call, and one
root span per WebSocket chat frame, so one chat is one trace from the gateway
through the orchestrator into memory and tools.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "phoenix_gateway_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["app", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "phoenix_gateway_http_request_duration_seconds",
    "Time to the response's first byte, by route template.",
    ["app", "route", "method"],
)
WS_CONNECTIONS = Gauge("phoenix_gateway_ws_connections", "Open chat WebSockets.")
WS_FRAMES = Counter(
    "phoenix_gateway_ws_frames_total",
    "Chat frames handled, by outcome.",
    ["outcome"],
)
CHAT_LATENCY = Histogram(
    "phoenix_gateway_chat_latency_seconds",
    "Orchestrator round trip of one chat frame.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
AUTH_REFUSED = Counter(
    "phoenix_gateway_auth_refused_total",
    "Requests refused for a missing or invalid credential or a twin mismatch.",
    ["transport", "reason"],
)
SSE_STREAMS = Gauge("phoenix_gateway_sse_streams", "Open telemetry streams.", ["app"])

# URLs left out of FastAPI tracing: probes, scrapes, and long-lived connections
# (a chat socket gets one root span per frame instead, see routes/chat_ws.py).
UNTRACED_URLS = "/api/health,/health,/metrics,/ws/chat,/v1/telemetry/stream,/static"


class MetricsMiddleware:
    """Counts HTTP requests by route template (never by raw path, which may carry ids)."""

    def __init__(self, app: ASGIApp, app_name: str) -> None:
        self.app = app
        self.app_name = app_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                HTTP_DURATION.labels(self.app_name, template, scope["method"]).observe(
                    time.perf_counter() - started
                )
                HTTP_REQUESTS.labels(
                    self.app_name, template, scope["method"], str(status["code"])
                ).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def instrument(app: FastAPI, app_name: str) -> None:
    """Metrics middleware, ``GET /metrics`` and FastAPI server spans."""
    app.add_middleware(MetricsMiddleware, app_name=app_name)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS)


def span_attributes(**values: Any) -> dict[str, Any]:
    return {f"phoenix.{key}": value for key, value in values.items() if value is not None}


TOKEN_IN_URL = re.compile(r"(?i)([?&](?:token|api_key|access_token)=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Masks ``?token=...`` in log lines: uvicorn logs every WebSocket URL it accepts."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = TOKEN_IN_URL.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_server_logs() -> None:
    """Install RedactTokens on the root handlers (call after phoenix_common's logging setup)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())
