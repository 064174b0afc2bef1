"""Prometheus metrics and tracing of the gateway's HTTP routes; log redaction.

Metrics live in ``metrics`` (the telemetry producer counts with them too).
Traces: FastAPI's native OpenTelemetry support gives HTTP routes one server
span each (see ``app``), the chat socket one root span per frame
(routes/chat_ws.py) with a client span for its orchestrator call (chat.py),
and ``traceparent`` goes upstream, so one chat message is one trace from the
gateway through the orchestrator into memory and tools.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phoenix_gateway.metrics import HTTP_DURATION, HTTP_REQUESTS

# Paths left out of tracing: probes, scrapes, and long-lived connections
# (a chat socket gets one root span per frame instead, see routes/chat_ws.py).
UNTRACED_PREFIXES = ("/api/health", "/metrics", "/ws/chat", "/v1/telemetry/stream", "/static")


def untraced(scope: MutableMapping[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith(UNTRACED_PREFIXES)


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

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                HTTP_DURATION.labels(self.app_name, template, scope["method"]).observe(
                    time.perf_counter() - started
                )
                HTTP_REQUESTS.labels(
                    self.app_name, template, scope["method"], str(message["status"])
                ).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


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
