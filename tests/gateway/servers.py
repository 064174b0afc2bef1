"""Real HTTP servers on 127.0.0.1 for the gateway's tests: uvicorn in the test's event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from phoenix_orchestrator.api import ApprovalDecision, ApprovalQuery


@asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port for the block; yields its base URL.

    ``options`` are more ``uvicorn.Config`` settings (another ``http`` protocol, ...)."""
    settings: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "on"}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, **(settings | options))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


CHUNK_LINE = b'{"type": "message_chunk", "content_chunk": "Hel"}\n'
# Streamed replies that go wrong: a line that is not the protocol's, and a stream cut short.
BROKEN_STREAMS = {
    "garbled stream": [CHUNK_LINE, b'["not", "a", "line"]\n'],
    "cut stream": [CHUNK_LINE],
}


def broken_stream(lines: list[bytes]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            yield line

    return StreamingResponse(body(), media_type="application/x-ndjson")


@dataclass
class FakeOrchestrator:
    """Speaks the orchestrator's /chat and approvals contract; remembers what it received."""

    chats: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/chat", response_model=None)
        async def chat(request: Request) -> JSONResponse | StreamingResponse:  # noqa: PLR0911 - a branch per scripted message
            body = await request.json()
            self.chats.append(body)
            self.headers.append(dict(request.headers))
            message = body.get("message", "")
            if body.get("stream") is True and message in BROKEN_STREAMS:
                return broken_stream(BROKEN_STREAMS[message])
            if self.delay:
                await asyncio.sleep(self.delay)
            if not isinstance(message, str) or not message:
                return JSONResponse({"detail": "message must be a non-empty string"}, 422)
            if message == "dependency down":
                return JSONResponse({"detail": "memory service unavailable"}, 503)
            if message.startswith("[TOOL_EXECUTED]"):
                return JSONResponse(
                    {
                        "response": "Approval request 'r-1' (command_exec) expired.",
                        "job_id": "job-4",
                        "actions_taken": ["approval_expired"],
                        "status": "error",
                        "error": {"code": "approval_expired", "message": "expired"},
                    },
                    410,
                )
            if message.startswith("search"):
                return JSONResponse(
                    {
                        "response": "Authorization required to run a memory search.",
                        "job_id": "job-1",
                        "actions_taken": ["Memory authorization requested: m-1"],
                        "status": "completed",
                        "issued_command": {
                            "command": "show_memory_page",
                            "memory_id": "m-1",
                            "query": message,
                        },
                        "raw_orchestrator_decision": json.dumps(
                            {"action_type": "ActionMemory", "details": {"query": message}}
                        ),
                    }
                )
            if message.startswith("[MEMORY_SHOWN]"):
                return JSONResponse(
                    {
                        "response": "Found 2 memory results",
                        "job_id": "job-2",
                        "actions_taken": ["Memory query authorized: 2 results"],
                        "status": "completed",
                        "source_memories": ["mem-a", "mem-b"],
                    }
                )
            return JSONResponse(
                {
                    "response": f"I understand you said: '{message}'.",
                    "job_id": "job-3",
                    "actions_taken": ["Direct response generated"],
                    "status": "completed",
                }
            )

        @app.get("/v1/approvals")
        async def list_approvals(request: Request) -> JSONResponse:
            params = dict(request.query_params)
            self.headers.append(dict(request.headers))
            try:  # the real query model, so this fake cannot drift from the contract
                query = ApprovalQuery.model_validate(params)
            except ValidationError as err:
                return JSONResponse({"detail": err.errors(include_url=False)}, 422)
            if query.session_id is None and query.twin_id is None:
                return JSONResponse({"detail": "name the twin_id or the session_id"}, 422)
            pending = [
                p
                for p in self.pending
                if query.session_id in (None, p["session_id"])
                and query.twin_id in (None, p["twin_id"])
            ]
            return JSONResponse(
                {"session_id": query.session_id, "pending": pending, "query": params}
            )

        @app.post("/v1/approvals/{request_id}/{decision}")
        async def decide(request_id: str, decision: str, request: Request) -> JSONResponse:
            body = await request.json()
            self.headers.append(dict(request.headers))
            try:  # the real decision model: extra fields and a missing session_id are 422
                ApprovalDecision.model_validate(body)
            except ValidationError as err:
                return JSONResponse({"detail": err.errors(include_url=False)}, 422)
            if decision not in ("approve", "deny"):
                return JSONResponse({"detail": "Not Found"}, 404)
            if not any(
                p["request_id"] == request_id
                and p["session_id"] == body["session_id"]
                and body.get("twin_id") in (None, p["twin_id"])
                for p in self.pending
            ):
                return JSONResponse({"detail": "approval_not_found"}, 404)
            self.approvals.append({"id": request_id, "decision": decision, **body})
            return JSONResponse(
                {
                    "response": f"{decision}d {request_id}",
                    "actions_taken": [],
                    "status": "completed",
                }
            )

        return app


def fake_telemetry_app(*, events: int, interval: float, pause: float = 0.0) -> FastAPI:
    """An SSE stream of ``events`` metrics events, ``interval`` seconds apart, then its end.

    Halfway through, the stream is silent for ``pause`` seconds.
    """
    app = FastAPI()

    @app.get("/v1/telemetry/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for index in range(events):
                await asyncio.sleep(interval + (pause if index == events // 2 else 0))
                yield f'event: metrics\ndata: {{"ts_ms": {index}}}\n\n'.encode()

        return StreamingResponse(body(), media_type="text/event-stream")

    return app
