"""``GET /v1/telemetry/stream``: the telemetry producer's SSE stream, relayed byte for byte.

The upstream client has a connect timeout but no read timeout, so a stream
lasts as long as both ends keep it open (the original cut it at its client's
60 s total timeout). The upstream response is closed when the browser leaves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from phoenix_gateway.deps import PrincipalDep, TelemetryDep
from phoenix_gateway.observability import SSE_STREAMS

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
        upstream = await client.send(
            client.build_request("GET", "/v1/telemetry/stream"), stream=True
        )
    except httpx.HTTPError:
        return PlainTextResponse("Telemetry service unavailable", status_code=502)
    if not upstream.is_success:
        body = (await upstream.aread())[:500].decode(errors="replace")
        await upstream.aclose()
        return PlainTextResponse(
            f"Telemetry upstream error {upstream.status_code}: {body}", status_code=502
        )

    async def relay() -> AsyncIterator[bytes]:
        SSE_STREAMS.labels("gateway").inc()
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # upstream went away; the browser's EventSource reconnects
        finally:
            SSE_STREAMS.labels("gateway").dec()
            await upstream.aclose()

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(upstream.aclose),
    )
