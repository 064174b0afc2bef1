"""The telemetry producer: ``GET /v1/telemetry/stream`` (SSE), ``/health`` and ``/metrics``.

A bare ASGI callable served by uvicorn: three fixed routes need no web
framework, and leaving one out keeps the process within its 32 MiB budget
(issue 12; measured by bench/chat.py).

The stream is the original's: ``event: metrics`` with the sample as JSON, the
latest sample at once and then one per ``TELEMETRY_INTERVAL_MS``, and a
``: keep-alive`` comment every ``TELEMETRY_KEEPALIVE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from phoenix_gateway.telemetry.metrics import CONTENT_TYPE, TelemetryMetrics
from phoenix_gateway.telemetry.sampler import Sample, Sampler
from phoenix_gateway.telemetry.settings import TelemetrySettings

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STREAM_PATH = "/v1/telemetry/stream"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
KEEP_ALIVE = b": keep-alive\n\n"


def event(sample: Sample) -> bytes:
    data = json.dumps(sample.as_dict(), separators=(",", ":"))
    return f"event: metrics\ndata: {data}\n\n".encode()


class TelemetryApp:
    """The producer's ASGI app; one sampler task for the process's lifetime."""

    def __init__(self, settings: TelemetrySettings) -> None:
        self.settings = settings
        self.sampler = Sampler(settings.interval_ms / 1000)
        self.metrics = TelemetryMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        route = path if path in ("/health", "/metrics", STREAM_PATH) else "unmatched"
        if method not in ("GET", "HEAD"):
            status = await _respond(send, 405, b"Method Not Allowed", b"text/plain")
        elif path == "/health":
            body = b'{"service":"phoenix-telemetry","status":"ok"}'
            status = await _respond(send, 200, body, b"application/json")
        elif path == "/metrics":
            status = await _respond(send, 200, self.metrics.render(), CONTENT_TYPE.encode())
        elif path == STREAM_PATH:
            self.metrics.requests[route, method, "200"] += 1
            await self._stream(receive, send)
            return
        else:
            status = await _respond(send, 404, b"Not Found", b"text/plain")
        self.metrics.requests[route, method, str(status)] += 1

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        task: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                task = asyncio.create_task(self.sampler.run(), name="telemetry-sampler")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        gone = asyncio.create_task(_disconnected(receive))
        self.metrics.open_streams += 1
        keepalive = self.settings.keepalive_seconds
        try:
            loop = asyncio.get_running_loop()
            next_keepalive = loop.time() + keepalive
            sample: asyncio.Task[Sample] = asyncio.create_task(self.sampler.first())
            while not gone.done():
                timeout = max(0.0, next_keepalive - loop.time())
                await asyncio.wait({sample, gone}, timeout=timeout, return_when="FIRST_COMPLETED")
                if gone.done():
                    break
                if sample.done():
                    await _chunk(send, event(sample.result()))
                    sample = asyncio.create_task(self.sampler.next())
                if loop.time() >= next_keepalive:
                    await _chunk(send, KEEP_ALIVE)
                    next_keepalive = loop.time() + keepalive
            sample.cancel()
        finally:
            self.metrics.open_streams -= 1
            gone.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> int:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


def create_app(settings: TelemetrySettings) -> TelemetryApp:
    return TelemetryApp(settings)
