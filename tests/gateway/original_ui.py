"""A client that speaks exactly as the original system's React UI does (original-system.md §9).

- WebSocket ``${VITE_WS_URL}/${userId}``, ``userId`` a generated ``user_<16 hex>``
  (unless forced), no credential, no subprotocol; a browser sends its page's Origin;
- one JSON text frame per message: ``{session_id, user_id, timestamp, message}``;
- reconnect: 5 attempts, 3000 ms apart, the counter reset whenever a socket opens;
- telemetry: ``EventSource(VITE_SSE_URL)``, a cross-origin GET without credentials
  whose body the browser hands over only with a matching Access-Control-Allow-Origin.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

UI_ORIGIN = "http://localhost:3000"  # the original's frontend service
RECONNECT_ATTEMPTS = 5
RECONNECT_DELAY_S = 3.0


def generated_user_id() -> str:
    return f"user_{secrets.token_hex(8)}"


@dataclass
class OriginalUI:
    """One browser tab of the original UI."""

    ws_url: str  # VITE_WS_URL, e.g. ws://127.0.0.1:8181/ws/chat
    sse_url: str  # VITE_SSE_URL, e.g. http://127.0.0.1:8181/v1/telemetry/stream
    user_id: str = field(default_factory=generated_user_id)
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    origin: str = UI_ORIGIN
    socket: ClientConnection | None = None
    attempts: int = 0
    opened: int = 0
    close_codes: list[int | None] = field(default_factory=list)

    async def open(self, reconnect_delay: float = RECONNECT_DELAY_S) -> bool:
        """Connect as the UI does, reconnecting on close; True once a socket stays open.

        A socket that opens resets the attempt counter (as the UI's onopen does), so
        a server that accepts and then closes keeps the UI reconnecting for ever:
        after ``3 * RECONNECT_ATTEMPTS`` opens this gives up and reports False.
        """
        while self.attempts < RECONNECT_ATTEMPTS and self.opened < 3 * RECONNECT_ATTEMPTS:
            try:
                socket = await connect(f"{self.ws_url}/{self.user_id}", origin=Origin(self.origin))
            except InvalidStatus:
                self.attempts += 1
                await asyncio.sleep(reconnect_delay)
                continue
            self.opened += 1
            self.attempts = 0
            try:
                async with asyncio.timeout(0.5):
                    await socket.recv()
            except ConnectionClosed as closed:
                self.close_codes.append(closed.rcvd.code if closed.rcvd else None)
                await asyncio.sleep(reconnect_delay)
                continue
            except TimeoutError:
                self.socket = socket  # open and quiet: usable
                return True
            raise AssertionError("the server sent a frame before any message")
        return False

    def frame(self, message: str) -> str:
        return json.dumps(
            {
                "session_id": self.session_id,
                "user_id": self.user_id,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "message": message,
            }
        )

    async def say(self, message: str) -> dict[str, Any]:
        """Send a message; the one frame the UI shows for it."""
        assert self.socket is not None, "not connected"
        await self.socket.send(self.frame(message))
        reply: dict[str, Any] = json.loads(await self.socket.recv())
        return reply

    async def approve(self, command: dict[str, Any]) -> dict[str, Any]:
        if command["command"] == "execute_tool":
            return await self.say(f"[TOOL_EXECUTED] {command['tool_name']} - CONFIRMED")
        return await self.say(f"[MEMORY_SHOWN] {command['memory_id']}")

    async def deny(self, command: dict[str, Any]) -> dict[str, Any]:
        if command["command"] == "execute_tool":
            return await self.say(f"[TOOL_DENIED] {command['tool_name']}")
        return await self.say(f"[MEMORY_DENIED] {command['memory_id']}")

    async def first_metrics_event(self, wait: float = 10.0) -> tuple[httpx.Response, str]:
        """The EventSource's response and its first ``metrics`` data line (within ``wait`` s)."""
        async with (
            httpx.AsyncClient(timeout=wait) as client,
            client.stream(
                "GET",
                self.sse_url,
                headers={"Origin": self.origin, "Accept": "text/event-stream"},
            ) as response,
        ):
            if response.status_code != 200:
                await response.aread()
                return response, ""
            async with asyncio.timeout(wait):
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and event == "metrics":
                        return response, line.removeprefix("data:").strip()
        raise AssertionError("the stream ended without a metrics event")

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
