"""The gateway's HTTP/1.1 client for its two upstreams: the orchestrator and the telemetry stream.

Why not httpx or aiohttp: each chat frame makes one request, and the whole
chat round trip has a budget of about a millisecond. On the benchmark machine
(bench/chat.py, CPU time per request against a local echo server) httpx cost
about 4 ms of CPU per request, aiohttp about 0.6 ms and this client about
0.13 ms, most of it the two system calls. It is deliberately small:

- keep-alive connections in a LIFO pool; an idle connection is reused only
  while younger than ``idle_seconds`` and never after the server closed it;
- one ``write`` per request (head and body together) and httptools (uvicorn's
  own parser) for the response: Content-Length, chunked and close-delimited
  bodies, a body size cap;
- a total timeout per request (connect, send, receive) and TLS for https URLs;
- streamed responses (the telemetry stream, a streamed chat reply) on a
  connection of their own, read as they arrive with backpressure;
- no redirects, proxies, cookies, compression or HTTP/2: the hop needs none;
- a request is never retried: ``POST /chat`` is not idempotent (RFC 9110 9.2.2).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

HeaderPairs = Iterable[tuple[str, str]]
STREAM_HIGH_WATER = 64  # queued chunks before a stream stops reading from its socket
_FORBIDDEN_IN_HEADERS = frozenset("\r\n\0")


class UpstreamError(Exception):
    """The upstream could not be reached, timed out or broke the protocol."""


@dataclass(frozen=True)
class UpstreamResponse:
    """A complete response: status, headers (names lower-cased) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response being read from it."""

    def __init__(self, max_body: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = False
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the body's end is in the stream
        self._head: asyncio.Future[tuple[int, tuple[tuple[str, str], ...]]] | None = None
        self._done: asyncio.Future[None] | None = None
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._paused = False
        # Made in the loop that uses it; asyncio.get_running_loop() costs a getpid() on 3.11.
        self._loop = asyncio.get_running_loop()

    # -- driving one exchange ------------------------------------------------------

    def send(self, data: bytes, *, streaming: bool) -> None:
        assert self.transport is not None  # noqa: S101 - narrowing: set on connect
        loop = self._loop
        self._headers, self._chunks, self._size = [], [], 0
        self._headers_done = self._framed = False
        self._head, self._done = loop.create_future(), loop.create_future()
        self._queue = asyncio.Queue() if streaming else None
        self.transport.write(data)

    async def response(self) -> UpstreamResponse:
        assert self._head is not None  # noqa: S101 - narrowing: set by send()
        assert self._done is not None  # noqa: S101 - narrowing: set by send()
        status, headers = await self._head
        await self._done
        return UpstreamResponse(status, headers, b"".join(self._chunks))

    async def head(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        assert self._head is not None  # noqa: S101 - narrowing: set by send()
        return await self._head

    async def chunks(self) -> AsyncIterator[bytes]:
        assert self._queue is not None  # noqa: S101 - narrowing: send(streaming=True)
        assert self._done is not None  # noqa: S101 - narrowing: set by send()
        while True:
            chunk = await self._queue.get()
            if self._paused and self._queue.qsize() < STREAM_HIGH_WATER // 2:
                self._paused = False
                if self.transport is not None and not self.closed:
                    self.transport.resume_reading()
            if chunk is None:
                if self._done.done() and self._done.exception() is not None:
                    raise UpstreamError(str(self._done.exception()))
                return
            yield chunk

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        for future in (self._head, self._done):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a stream may never await _done
        if self._queue is not None:
            self._queue.put_nowait(None)
        self.close()

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(UpstreamError(f"invalid HTTP response from upstream: {err}"))

    def eof_received(self) -> bool:
        if self._headers_done and not self._framed and self._done and not self._done.done():
            self.on_message_complete()  # a close-delimited body ends here
        else:
            self._fail(UpstreamError("upstream closed the connection before responding"))
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = f": {exc}" if exc else ""
        self._fail(UpstreamError(f"upstream connection lost{reason}"))

    # -- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key in ("content-length", "transfer-encoding"):
            self._framed = True
        self._headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._head is not None and not self._head.done():
            self._head.set_result((self._parser.get_status_code(), tuple(self._headers)))

    def on_body(self, body: bytes) -> None:
        if self._queue is not None:
            self._queue.put_nowait(body)
            if not self._paused and self._queue.qsize() >= STREAM_HIGH_WATER:
                self._paused = True
                assert self.transport is not None  # noqa: S101 - narrowing: connected
                self.transport.pause_reading()
            return
        self._size += len(body)
        if self._size > self._max_body:
            self._fail(UpstreamError(f"upstream response larger than {self._max_body} bytes"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        if self._queue is not None:
            self._queue.put_nowait(None)


class UpstreamStream:
    """A response whose body is read as it arrives (the telemetry stream)."""

    def __init__(self, connection: _Connection, status: int, headers: tuple[tuple[str, str], ...]):
        self._connection = connection
        self.status = status
        self.headers = headers

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def chunks(self) -> AsyncIterator[bytes]:
        return self._connection.chunks()

    async def read(self, limit: int) -> bytes:
        """Up to about ``limit`` bytes of the body (for an error message)."""
        collected = b""
        async for chunk in self.chunks():
            collected += chunk
            if len(collected) >= limit:
                break
        return collected[:limit]

    def close(self) -> None:
        self._connection.close()


class UpstreamClient:
    """Requests to one base URL (``http://host:port`` or ``https://...``), kept alive."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float | None = None,
        max_idle: int = 64,
        idle_seconds: float = 4.0,
        max_body: int = 16 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s)://host[:port] URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = self._port == (443 if self._ssl else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = min(timeout, connect_timeout or timeout)
        self._max_idle = max_idle
        self._idle_seconds = idle_seconds
        self._max_body = max_body
        self._idle: list[_Connection] = []

    def _head(self, method: str, path: str, body: bytes, headers: HeaderPairs) -> bytes:
        lines = [f"{method} {self._prefix}{path} HTTP/1.1", f"host: {self._host_header}"]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        for name, value in headers:
            if _FORBIDDEN_IN_HEADERS.intersection(name) or _FORBIDDEN_IN_HEADERS.intersection(
                value
            ):
                raise ValueError(f"header {name!r} holds a line break or NUL")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, connection = await loop.create_connection(
                    lambda: _Connection(self._max_body),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            raise UpstreamError(
                f"connecting to {self._host_header} timed out after {self._connect_timeout:g}s"
            ) from None
        except OSError as err:
            raise UpstreamError(f"cannot connect to {self._host_header}: {err}") from None
        # uvloop may return before connection_made has run; the transport is ours either way.
        connection.transport = transport
        return connection

    async def _acquire(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            transport = connection.transport
            if (
                not connection.closed
                and transport is not None
                and not transport.is_closing()
                and now - connection.idle_since < self._idle_seconds
            ):
                return connection
            connection.close()
        return await self._connect()

    def _release(self, connection: _Connection) -> None:
        if connection.keep_alive and not connection.closed and len(self._idle) < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    async def request(
        self, method: str, path: str, *, body: bytes = b"", headers: HeaderPairs = ()
    ) -> UpstreamResponse:
        """Send one request and read the whole response, within the client's timeout."""
        data = self._head(method, path, body, headers) + body
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._timeout):
                connection = await self._acquire()
                connection.send(data, streaming=False)
                response = await connection.response()
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise UpstreamError(f"no response within {self._timeout:g}s") from None
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        self._release(connection)
        return response

    async def stream(
        self, method: str, path: str, *, body: bytes = b"", headers: HeaderPairs = ()
    ) -> UpstreamStream:
        """Send a request and return once the response's headers are in; the body streams.

        The connection is the stream's own (never pooled): closing the stream closes
        it, which is how a caller tells the upstream to stop (a client went away).
        """
        data = self._head(method, path, body, headers) + body
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                connection = await self._connect()
                connection.send(data, streaming=True)
                status, response_headers = await connection.head()
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise UpstreamError(f"no response within {self._connect_timeout:g}s") from None
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        return UpstreamStream(connection, status, response_headers)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
