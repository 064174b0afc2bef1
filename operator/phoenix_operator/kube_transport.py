"""lightkube's HTTP exchange on aiohttp: what goes over the wire, nothing else.

lightkube still builds, authenticates and decodes every request through httpx (exec
plugins, service-account tokens re-read on 401, typed objects); only the exchange is
aiohttp's, which kopf already loads for its watches. Per request, httpcore's pure-Python
HTTP/1.1 over anyio's TLS stream cost the operator several times the CPU of aiohttp's C
parser over asyncio's own SSL transport (figures in docs/operator.md), and the operator
makes ~25 requests per twin it creates.

One aiohttp session, opened in the running loop on first use, keeps at most
``connections`` connections to the API server open. aiohttp's failures are mapped to
httpx's transport errors, so the retry policy in kube.py sees the same exceptions it
would with httpx's own transport.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx2
from yarl import URL

# Set by aiohttp from what it sends; passing httpx's copies along would duplicate them.
_MANAGED_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})


@contextmanager
def _as_httpx_errors(request: httpx2.Request, *, connected: bool) -> Iterator[None]:
    """aiohttp's exceptions as the httpx TransportError subclasses they correspond to."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as err:
        raise httpx2.ConnectTimeout(str(err) or "connect timed out", request=request) from err
    except TimeoutError as err:  # aiohttp's SocketTimeoutError (sock_read) among them
        raise httpx2.ReadTimeout(str(err) or "read timed out", request=request) from err
    except aiohttp.ClientConnectorError as err:
        raise httpx2.ConnectError(str(err), request=request) from err
    except aiohttp.ServerDisconnectedError as err:
        raise httpx2.RemoteProtocolError(str(err), request=request) from err
    except aiohttp.ClientPayloadError as err:
        raise httpx2.ReadError(str(err), request=request) from err
    except aiohttp.ClientResponseError as err:  # a malformed response from the server
        raise httpx2.RemoteProtocolError(str(err), request=request) from err
    except aiohttp.ClientError as err:  # ClientOSError and the rest: the connection failed
        failed = httpx2.ReadError if connected else httpx2.ConnectError
        raise failed(str(err), request=request) from err


class _ResponseStream(httpx2.AsyncByteStream):
    """The response body as aiohttp receives it; closing it frees the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request, connected=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx transport that sends each request with one shared aiohttp session."""

    def __init__(self, ssl_context: ssl.SSLContext, *, connections: int) -> None:
        self._ssl = ssl_context
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl),
                auto_decompress=False,  # httpx decodes by Content-Encoding itself
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_sum(timeouts.get("pool"), timeouts.get("connect")),
            sock_read=timeouts.get("read"),
        )
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _MANAGED_HEADERS
        ]
        body = await request.aread()
        # aiohttp has no write timeout, and its read timer starts only once the request is
        # sent: a server that stops reading would hold the request forever. Bound sending
        # plus the wait for the answer's headers by the sum of httpx's four timeouts.
        deadline = asyncio.timeout(_sum_all(timeouts, ("pool", "connect", "write", "read")))
        with _as_httpx_errors(request, connected=False):
            try:
                async with deadline:
                    response = await self._opened().request(
                        request.method,
                        URL(str(request.url), encoded=True),
                        headers=headers,
                        data=body or None,
                        allow_redirects=False,
                        timeout=timeout,
                    )
            except TimeoutError as err:
                if not deadline.expired():  # aiohttp's own connect or read timeout
                    raise
                # Neither the connect nor the read timer fired, so the request was not sent.
                raise httpx2.WriteTimeout(
                    "the request was not sent in time", request=request
                ) from err
        return httpx2.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let the SSL transports finish closing (aiohttp's advice)


def _sum_all(timeouts: dict[str, float | None], names: tuple[str, ...]) -> float | None:
    """The sum of the named timeouts; None (no limit) if any of them is unset."""
    parts = [timeouts.get(name) for name in names]
    return None if None in parts else _sum(*parts)


def _sum(*parts: float | None) -> float | None:
    present = [part for part in parts if part is not None]
    return sum(present) if present else None
