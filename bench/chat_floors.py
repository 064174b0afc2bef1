"""The chat benchmark's floors: the least a WebSocket round trip can cost on our server stack.

``python -m bench.chat_floors ws-echo PORT``: a WebSocket that echoes each text frame.
``python -m bench.chat_floors http-echo PORT``: an HTTP server answering each POST with its body.
``python -m bench.chat_floors ws-hop PORT UPSTREAM``: a WebSocket that POSTs each frame to
``UPSTREAM`` and sends back the reply's body (one gateway-to-orchestrator hop, nothing else).

Each is a bare ASGI callable served by uvicorn with the gateway's own server
settings and its own upstream HTTP client, so the difference between a floor and
the real chat path is what PhoenixTwin's code adds, not the stack under it.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def http_echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = await _body(receive)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def ws_hop(upstream: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    from phoenix_gateway.upstream import UpstreamClient

    client = UpstreamClient(upstream, timeout=30.0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            body = (message.get("text") or "").encode()
            headers = (("content-type", "application/json"),)
            reply = await client.request("POST", "/chat", body=body, headers=headers)
            await send({"type": "websocket.send", "text": reply.body.decode()})

    return app


def main(argv: list[str]) -> None:
    from phoenix_common.asgi import serve

    kind, port = argv[0], int(argv[1])
    app = {"ws-echo": ws_echo, "http-echo": http_echo}.get(kind) or ws_hop(argv[2])
    serve(app, host="127.0.0.1", port=port, websockets=kind != "http-echo")


if __name__ == "__main__":
    main(sys.argv[1:])
