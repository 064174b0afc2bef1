"""The gateway's HTTP/1.1 client against scripted raw servers, on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from phoenix_gateway.upstream import UpstreamClient, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LOOPS = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    runner: Callable[[Coroutine[Any, Any, Any]], Any] = LOOPS[request.param]
    return runner


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head, await reader.readexactly(length)


class Server:
    """A raw TCP server on 127.0.0.1 answering each request with ``respond(head, body)``."""

    def __init__(self, respond: Callable[[bytes, bytes], bytes], *, close_after: bool = False):
        self.respond = respond
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head, body = await read_request(reader)
                self.requests.append(head + body)
                writer.write(self.respond(head, body))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()


def echo(head: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def test_requests_reuse_one_kept_alive_connection(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        server = Server(echo)
        async with server as url:
            client = UpstreamClient(url, timeout=5)
            replies = [
                await client.request("POST", "/chat", body=b'{"n":%d}' % n, headers=[("x-a", "b")])
                for n in range(5)
            ]
            await client.aclose()
        assert [r.body for r in replies] == [b'{"n":%d}' % n for n in range(5)]
        assert replies[0].status == 200
        assert replies[0].header("Content-Type") == "application/json"
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /chat HTTP/1.1\r\n")
        assert b"\r\nx-a: b\r\n" in first
        assert b"\r\ncontent-length: 7\r\n" in first

    run(scenario())


def test_chunked_and_close_delimited_bodies(run: Callable[..., Any]) -> None:
    def chunked(head: bytes, body: bytes) -> bytes:
        return (
            b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )

    def until_close(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"

    async def scenario() -> None:
        async with Server(chunked) as url:
            client = UpstreamClient(url, timeout=5)
            reply = await client.request("GET", "/x")
            assert (reply.status, reply.body, reply.is_success) == (503, b"hello world", False)
        async with Server(until_close, close_after=True) as url:
            client = UpstreamClient(url, timeout=5)
            assert (await client.request("GET", "/x")).body == b"all of it"
            assert (await client.request("GET", "/x")).body == b"all of it"  # a new connection

    run(scenario())


def test_a_connection_the_server_closed_is_not_reused(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        server = Server(echo, close_after=True)  # answers, then closes (no connection: close)
        async with server as url:
            client = UpstreamClient(url, timeout=5)
            for n in range(3):
                await client.request("POST", "/chat", body=b"%d" % n)
                await asyncio.sleep(0.05)  # the close reaches the client before the next request
        assert server.connections == 3

    run(scenario())


def test_failures_are_upstream_errors(run: Callable[..., Any]) -> None:
    def silent(head: bytes, body: bytes) -> bytes:
        return b""

    def huge(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100000

    def garbage(head: bytes, body: bytes) -> bytes:
        return b"SMTP ready\r\n\r\n"

    async def scenario() -> None:
        async with Server(silent) as url:
            with pytest.raises(UpstreamError, match=r"no response within 0.2s"):
                await UpstreamClient(url, timeout=0.2).request("GET", "/")
        async with Server(huge) as url:
            with pytest.raises(UpstreamError, match="larger than 1000 bytes"):
                await UpstreamClient(url, timeout=5, max_body=1000).request("GET", "/")
        async with Server(garbage) as url:
            with pytest.raises(UpstreamError, match="invalid HTTP response"):
                await UpstreamClient(url, timeout=5).request("GET", "/")
        async with Server(echo) as url:
            port = url.rsplit(":", 1)[1]
        with pytest.raises(UpstreamError, match="cannot connect"):
            await UpstreamClient(f"http://127.0.0.1:{port}", timeout=5).request("GET", "/")

    run(scenario())


def test_header_injection_is_refused_before_sending(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        server = Server(echo)
        async with server as url:
            client = UpstreamClient(url, timeout=5)
            with pytest.raises(ValueError, match="line break"):
                await client.request("POST", "/chat", headers=[("x-user-id", "a\r\nx-admin: 1")])
        assert server.requests == []

    run(scenario())


def test_a_stream_yields_chunks_as_they_arrive(run: Callable[..., Any]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        for n in range(3):
            writer.write(b"data: %d\n\n" % n)
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stream = await UpstreamClient(f"http://127.0.0.1:{port}", timeout=5).stream("GET", "/s")
        assert stream.status == 200
        body = b"".join([chunk async for chunk in stream.chunks()])
        stream.close()
        server.close()
        assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"

    run(scenario())


def test_concurrent_requests_each_get_their_own_response(run: Callable[..., Any]) -> None:
    """Many sockets' requests at once: no response is ever handed to another request."""

    async def slow_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, body = await read_request(reader)
                await asyncio.sleep((int(body) % 7) / 1000)  # answers finish out of order
                writer.write(echo(head, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(slow_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient(f"http://127.0.0.1:{port}", timeout=30, max_idle=8)

        async def one_socket(socket: int) -> list[bool]:
            results = []
            for n in range(40):
                body = b"%d" % (socket * 1000 + n)
                results.append((await client.request("POST", "/chat", body=body)).body == body)
            return results

        outcomes = await asyncio.gather(*(one_socket(s) for s in range(12)))
        await client.aclose()
        server.close()
        assert all(all(results) for results in outcomes)

    run(scenario())
