"""Streamed replies: ``application/x-ndjson``, answer text first, the whole reply last.

Lines, one JSON object each::

    {"type": "message_chunk", "content_chunk": "Hel"}
    {"type": "message_chunk", "content_chunk": "lo"}
    {"type": "complete", "status_code": 200, "reply": {<ChatResponse>}}

``status_code`` is what the same request would have answered without
streaming (an error reply keeps its 4xx/5xx there; the HTTP status is 200
because it was sent before the outcome was known).

The turn runs in a task of its own, never in the response's: a client that
goes away cancels only the turn's *planning* (``TurnControl``); a tool run
already started finishes and is recorded. A slow client never slows the turn:
chunks waiting to be sent are merged into one (``ChunkQueue``), so what is
queued is bounded by the answer's size, not by the number of pieces.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from phoenix_orchestrator.agent.loop import TurnControl
from phoenix_orchestrator.agent.replies import Sink
from phoenix_orchestrator.api import ChatResponse, error_response
from phoenix_orchestrator.errors import ReplyError
from phoenix_orchestrator.observability import Metrics

logger = logging.getLogger(__name__)
Work = Callable[[Sink, TurnControl], Awaitable[ChatResponse]]
_TASKS: set[asyncio.Task[None]] = set()  # turns outliving their response (a client left)


class ChunkQueue:
    """Text waiting to be sent, merged; then the final reply."""

    def __init__(self) -> None:
        self._pending = ""
        self._final: bytes | None = None
        self._ready = asyncio.Event()

    async def put(self, text: str) -> None:
        self._pending += text
        self._ready.set()

    def finish(self, reply: ChatResponse, status_code: int) -> None:
        payload = reply.model_dump_json(exclude_none=True)
        self._final = (
            f'{{"type":"complete","status_code":{status_code},"reply":{payload}}}\n'.encode()
        )
        self._ready.set()

    @property
    def finished(self) -> bool:
        return self._final is not None

    async def lines(self) -> AsyncIterator[bytes]:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._pending:
                chunk, self._pending = self._pending, ""
                line = json.dumps({"type": "message_chunk", "content_chunk": chunk})
                yield (line + "\n").encode()
            if self._final is not None and not self._pending:
                yield self._final
                return


class NdjsonReply(Response):
    """An ASGI response that streams a turn and notices at once when the client leaves."""

    media_type = "application/x-ndjson"

    def __init__(self, work: Work, metrics: Metrics) -> None:  # no body to render: __call__ streams
        self._work = work
        self._metrics = metrics
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue, control = ChunkQueue(), TurnControl()
        turn = asyncio.create_task(self._run(queue, control))
        _TASKS.add(turn)
        turn.add_done_callback(_TASKS.discard)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/x-ndjson"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        sending = asyncio.create_task(self._send(queue, send))
        listening = asyncio.create_task(_disconnected(receive))
        await asyncio.wait({sending, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        left = not sending.done()
        if left:
            sending.cancel()
        elif not sending.cancelled() and sending.exception() is not None:
            left = True  # the send failed: the connection is gone
        if left:
            control.cancel()
            self._metrics.streams_cancelled.inc()
            logger.info("streamed reply cancelled: the client left")

    @staticmethod
    async def _send(queue: ChunkQueue, send: Send) -> None:
        async for line in queue.lines():
            await send({"type": "http.response.body", "body": line, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _run(self, queue: ChunkQueue, control: TurnControl) -> None:
        try:
            reply, status = await self._work(queue.put, control), 200
        except ReplyError as err:
            reply = error_response(err.code, str(err), actions_taken=err.actions_taken)
            status = 200 if err.conversational else err.http_status
        except Exception:
            logger.exception("streamed chat failed")
            reply, status = (
                error_response("internal", "Internal server error", actions_taken=[]),
                500,
            )
        queue.finish(reply, status)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
