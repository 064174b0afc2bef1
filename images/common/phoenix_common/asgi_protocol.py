"""uvicorn's httptools protocol, sending a response's head and its body in one write.

uvicorn writes the status line and headers as soon as the app sends
``http.response.start``, and the body separately: two TCP segments per
response, so the client (the gateway, for every chat message) wakes and reads
twice. Here the head is held back until the first body write of the same
response and both go out in one ``write``. A head whose body does not follow
in the same event-loop step (a streamed response still being made) is written
at the next step on its own, so a client never waits longer for headers than
before. Imported by ``phoenix_common.asgi`` only (uvicorn is not installed in
the gRPC services' images).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _HeadWithBody:
    """A response cycle's transport: the head waits for the body (at most one loop step)."""

    def __init__(
        self,
        cycle: RequestResponseCycle,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # Dropped once the head is seen: the cycle holds this wrapper, and a reference
        # back would keep every finished request alive until the garbage collector ran.
        self._cycle: RequestResponseCycle | None = cycle
        self._transport = transport
        self._loop = loop  # asyncio.get_running_loop() costs a getpid() call on Python 3.11
        self._head: bytes | None = None
        self._flush_later: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif self._cycle is not None and self._cycle.response_started:
            # The first write after http.response.start is the head (a "100 Continue"
            # comes before the response starts and passes straight through).
            self._cycle = None
            self._head = data
            self._flush_later = self._loop.call_soon(self.flush)
            return
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        self._transport.write(data)

    def flush(self) -> None:
        """Write a held head now (its body is not coming in this loop step)."""
        self._flush_later = None
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol whose responses leave in one write when they can."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request (not a WebSocket upgrade)
            # Its task has been created but has not run yet: nothing was written.
            held = _HeadWithBody(self.cycle, self.transport, self.loop)
            self.cycle.transport = held  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        # Written on the protocol's own transport: a held head must go first.
        held = getattr(self.cycle, "transport", None)
        if isinstance(held, _HeadWithBody):
            held.flush()
        super().send_400_response(msg)
