"""``GET /v1/telemetry/stream``: the telemetry producer's SSE stream, relayed byte for byte.

The upstream request has a connect timeout but no read timeout, so a stream
lasts as long as both ends keep it open (the original cut it at its client's
60 s total timeout). The upstream connection is closed when the browser leaves.
A page on an origin in ``GATEWAY_CORS_ORIGINS`` may read it (the CORS headers
come from the app's CORS middleware; the original sent ``*`` to everyone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from phoenix_gateway.deps import PrincipalDep, TelemetryDep
from phoenix_gateway.metrics import SSE_STREAMS
from phoenix_gateway.upstream import UpstreamError

router = APIRouter(tags=["telemetry"])

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


@router.get("/v1/telemetry/stream")
async def telemetry_stream(principal: PrincipalDep, client: TelemetryDep) -> Response:
    del principal  # authenticated; telemetry is host-wide, not per twin
    try:
        upstream = await client.stream(
            "GET", "/v1/telemetry/stream", headers=[("accept", "text/event-stream")]
        )
    except UpstreamError:
        return PlainTextResponse("Telemetry service unavailable", status_code=502)
    if not upstream.is_success:
        body = (await upstream.read(500)).decode(errors="replace")
        upstream.close()
        return PlainTextResponse(
            f"Telemetry upstream error {upstream.status}: {body}", status_code=502
        )

    async def relay() -> AsyncIterator[bytes]:
        SSE_STREAMS.labels("gateway").inc()
        try:
            async for chunk in upstream.chunks():
                yield chunk
        except UpstreamError:
            return  # upstream went away; the browser's EventSource reconnects
        finally:
            SSE_STREAMS.labels("gateway").dec()
            upstream.close()

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(upstream.close),
    )
