"""Limits at the edge, per credential: request rate, body and frame size, open sockets.

One ASGI middleware in front of every route, so no route can forget them:

- **rate**: a token bucket per credential (``GATEWAY_RATE_LIMIT_PER_MINUTE``,
  ``GATEWAY_RATE_LIMIT_BURST``) spent by every HTTP request, WebSocket handshake and
  chat frame. Over it, HTTP gets 429 with ``Retry-After``; a chat frame gets the
  protocol's error ``status_update`` (one reply per frame, the socket stays open).
- **body**: an HTTP body over ``GATEWAY_MAX_BODY_BYTES`` is 413, by its
  Content-Length or, when chunked, as soon as it grows past the limit.
- **frame**: a chat frame over ``GATEWAY_WS_MAX_MESSAGE_BYTES`` gets an error
  ``status_update`` instead of reaching the chat handler. uvicorn's own cap
  (``ws_max_size``) is twice that, a memory backstop that closes with 1009.
- **sockets**: at most ``GATEWAY_WS_MAX_SOCKETS_PER_CREDENTIAL`` open chat sockets per
  credential; one more is accepted and closed with 1013 (try again later).

"Per credential" is keyed by a digest of the credential as presented (never the
credential itself), before it is verified: guessing keys is rate-limited too. A
request without one is keyed by its client address. Probes (``/api/health``,
``/metrics``) and static files are not limited. Every refusal counts in
``phoenix_gateway_limited_total{transport, limit}``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phoenix_gateway.auth import find_credential
from phoenix_gateway.contracts import StatusUpdate
from phoenix_gateway.settings import GatewaySettings

LIMITED = Counter(
    "phoenix_gateway_limited_total",
    "Requests, frames and sockets refused by an edge limit, by transport and limit.",
    ["transport", "limit"],
)
UNLIMITED_PREFIXES = ("/api/health", "/metrics", "/static/")
QUERY_TOKEN_PATHS = frozenset({"/v1/telemetry/stream", "/ws/chat"})
MAX_BUCKETS = 10_000  # then full (idle) buckets are dropped
WS_TRY_AGAIN_LATER = 1013


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key; ``take`` is 0.0 when allowed, else seconds until it would be."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self._forget(now)
            bucket = self.buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Down to half of MAX_BUCKETS at once, so a flood of new keys costs O(1) each.

        A bucket that has refilled completely is the same as no bucket; if a flood of
        distinct keys leaves too few of those, the oldest go (a key dropped that way
        starts again with a full burst: the limit degrades, memory stays bounded).
        """
        full = [
            k
            for k, b in self.buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for key in full:
            del self.buckets[key]
        excess = len(self.buckets) - MAX_BUCKETS // 2
        for key in list(itertools.islice(self.buckets, max(0, excess))):
            del self.buckets[key]


class SocketCounter:
    """Open sockets by key."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self.open.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self.open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)


def limit_key(scope: Scope) -> str:
    """A digest of the credential presented, else the client address."""
    connection = HTTPConnection(scope)
    path = connection.url.path
    allow_query = path in QUERY_TOKEN_PATHS or path.startswith("/ws/")
    credential = find_credential(
        connection.headers, connection.query_params, connection.cookies, allow_query=allow_query
    )
    if credential is not None:
        return "credential:" + hashlib.sha256(credential.value.encode()).hexdigest()[:32]
    return "client:" + (connection.client.host if connection.client else "unknown")


def frame_error(details: str) -> str:
    return StatusUpdate(status="error", details=details).model_dump_json()


class EdgeLimits:
    """The ASGI middleware applying the limits of ``settings``."""

    def __init__(
        self,
        app: ASGIApp,
        settings: GatewaySettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_frame = settings.ws_max_message_bytes
        self.rate = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst, clock)
        self.sockets = SocketCounter(settings.ws_max_sockets_per_credential)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(
            UNLIMITED_PREFIXES
        ):
            await self.app(scope, receive, send)
            return
        key = limit_key(scope)
        if scope["type"] == "http":
            await self._http(scope, receive, send, key)
        else:
            await self._websocket(scope, receive, send, key)

    async def _http(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        wait = self.rate.take(key)
        if wait:
            LIMITED.labels("http", "rate").inc()
            await _refuse(send, 429, "rate limit exceeded", {"retry-after": _seconds(wait)})
            return
        if self.max_body:
            headers = dict(HTTPConnection(scope).headers)
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                LIMITED.labels("http", "body").inc()
                await _refuse(send, 413, f"request body over {self.max_body} bytes")
                return
            if declared is None and "chunked" in headers.get("transfer-encoding", "").lower():
                body = await _read_at_most(receive, self.max_body)
                if body is None:
                    LIMITED.labels("http", "body").inc()
                    await _refuse(send, 413, f"request body over {self.max_body} bytes")
                    return
                receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        if self.rate.take(key):
            LIMITED.labels("ws", "rate").inc()
            await _close_before_serving(receive, send, "rate limit exceeded")
            return
        if not self.sockets.acquire(key):
            LIMITED.labels("ws", "sockets").inc()
            await _close_before_serving(receive, send, "too many open sockets for this credential")
            return
        try:
            await self.app(scope, self._frames(key, receive, send), send)
        finally:
            self.sockets.release(key)

    def _frames(self, key: str, receive: Receive, send: Send) -> Receive:
        """``receive`` that answers an oversized or over-rate frame itself and reads the next."""

        async def limited() -> Message:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return message
                text, data = message.get("text"), message.get("bytes")
                size = len(text.encode()) if text is not None else len(data or b"")
                if self.max_frame and size > self.max_frame:
                    LIMITED.labels("ws", "frame").inc()
                    details = f"message of {size} bytes is over the limit of {self.max_frame}"
                    await send({"type": "websocket.send", "text": frame_error(details)})
                    continue
                wait = self.rate.take(key)
                if wait:
                    LIMITED.labels("ws", "rate").inc()
                    details = f"rate limit exceeded: retry in {_seconds(wait)} s"
                    await send({"type": "websocket.send", "text": frame_error(details)})
                    continue
                return message

        return limited


def _seconds(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


async def _refuse(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail})
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is longer than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client left; the app sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _close_before_serving(receive: Receive, send: Send, reason: str) -> None:
    """Accept, then close with 1013: a browser sees a close code only on an accepted socket."""
    message: Any = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": WS_TRY_AGAIN_LATER, "reason": reason})
