"""One place that says how PhoenixTwin's HTTP services are served: uvicorn on uvloop + httptools.

The gateway and the orchestrator (and the chat benchmark's floors, so they
measure the same stack) call ``serve``. The choices are explicit rather than
uvicorn's "auto", so a missing optional package fails at startup instead of
silently falling back to a slower implementation: uvloop's event loop,
httptools' HTTP parser (in ``asgi_protocol``'s subclass, which sends a
response's head and body in one write) and, where a service has WebSockets,
the websockets library's sans-I/O protocol (the fastest of uvicorn's three in
bench/chat.py's measurements). uvicorn is imported here, not at module level:
the gRPC services' images do not install it.
"""

from __future__ import annotations

from typing import Any


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    websockets: bool = False,
    ws_max_size: int = 1024 * 1024,
    graceful_shutdown_seconds: int = 5,
    keep_alive_seconds: int = 5,
) -> None:
    """Run ``app`` until SIGINT/SIGTERM; logging is phoenix_common.logging's, no access log."""
    import uvicorn  # noqa: PLC0415 - only HTTP services have it

    from phoenix_common.asgi_protocol import (  # noqa: PLC0415 - it imports uvicorn
        CoalescingHttpToolsProtocol,
    )

    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        ws="websockets-sansio" if websockets else "none",
        ws_max_size=ws_max_size,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For must not make a client look local
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        timeout_keep_alive=keep_alive_seconds,
    )
