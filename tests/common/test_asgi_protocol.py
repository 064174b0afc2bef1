"""phoenix_common.asgi_protocol: a response's head and body leave in one write, and nothing waits.

Unit tests drive the cycle's transport wrapper with a recording transport (what
is written, in which writes); the served tests run the protocol in uvicorn on
127.0.0.1 and read the bytes a client gets: whole responses, pipelined ones,
HEAD, and a streamed response whose head arrives before its body exists.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from phoenix_common.asgi_protocol import CoalescingHttpToolsProtocol, _HeadWithBody
from tests.gateway.servers import serve


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


class Cycle:
    response_started = False
    transport: Any = None


def wrapped() -> tuple[Cycle, RecordingTransport, _HeadWithBody]:
    cycle, transport = Cycle(), RecordingTransport()
    loop = asyncio.get_running_loop()
    return cycle, transport, _HeadWithBody(cycle, transport, loop)  # type: ignore[arg-type]


async def test_head_and_body_of_one_step_are_one_write() -> None:
    cycle, transport, wrapper = wrapped()
    cycle.response_started = True
    wrapper.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    wrapper.write(b"ok")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    await asyncio.sleep(0)  # the cancelled fallback writes nothing more
    await asyncio.sleep(0)
    assert len(transport.writes) == 1


async def test_a_head_without_its_body_is_written_at_the_next_loop_step() -> None:
    cycle, transport, wrapper = wrapped()
    cycle.response_started = True
    wrapper.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    wrapper.write(b"2\r\nok\r\n")
    assert transport.writes[1:] == [b"2\r\nok\r\n"]


async def test_close_writes_a_held_head_first() -> None:
    cycle, transport, wrapper = wrapped()
    cycle.response_started = True
    wrapper.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    wrapper.close()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert transport.closed
    await asyncio.sleep(0)
    assert len(transport.writes) == 1


async def test_a_100_continue_before_the_response_passes_straight_through() -> None:
    cycle, transport, wrapper = wrapped()
    wrapper.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle.response_started = True
    wrapper.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    wrapper.write(b"")
    assert transport.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]
    assert wrapper.get_write_buffer_size() == 0  # everything else is the transport's


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[int]:
    """``app`` behind the coalescing protocol on a free port; yields the port."""
    async with serve(app, http=CoalescingHttpToolsProtocol, lifespan="off") as url:
        yield int(url.rsplit(":", 1)[1])


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


async def test_pipelined_requests_get_whole_responses_in_order() -> None:
    async with served(echo) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        requests = b"".join(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            for body in (b"first", b"second", b"third")
        )
        writer.write(requests)
        async with asyncio.timeout(10):
            bodies = [(await read_response(reader))[1] for _ in range(3)]
        assert bodies == [b"first", b"second", b"third"]
        writer.write(b"HEAD / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        writer.close()


async def test_a_streamed_head_arrives_before_its_body_exists() -> None:
    release = asyncio.Event()

    async def streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/x-ndjson")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await release.wait()  # the body comes only once the client has the head
        await send({"type": "http.response.body", "body": b"line\n", "more_body": False})

    async with served(streamed) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        release.set()
        async with asyncio.timeout(10):
            assert await reader.readuntil(b"0\r\n\r\n") == b"5\r\nline\n\r\n0\r\n\r\n"
        writer.close()


async def test_a_finished_cycle_is_freed_without_the_garbage_collector() -> None:
    cycle, _, wrapper = wrapped()
    cycle.transport = wrapper  # as the protocol wires them
    cycle.response_started = True
    wrapper.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    wrapper.write(b"ok")
    gone = weakref.ref(cycle)
    del cycle, wrapper
    gc.disable()
    try:
        assert gone() is None  # no reference cycle: freed as soon as it is dropped
    finally:
        gc.enable()
