"""The gateway's Prometheus metrics (prometheus_client only).

Module-level (prometheus_client's registry is per process); no twin ids or other
tenant data in any label. The telemetry producer renders its two with the same
names itself (``telemetry.metrics``), for its memory budget.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "phoenix_gateway_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["app", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "phoenix_gateway_http_request_duration_seconds",
    "Time to the response's first byte, by route template.",
    ["app", "route", "method"],
)
WS_CONNECTIONS = Gauge("phoenix_gateway_ws_connections", "Open chat WebSockets.")
WS_FRAMES = Counter(
    "phoenix_gateway_ws_frames_total",
    "Chat frames handled, by outcome.",
    ["outcome"],
)
CHAT_LATENCY = Histogram(
    "phoenix_gateway_chat_latency_seconds",
    "Orchestrator round trip of one chat frame.",
    buckets=(
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
    ),
)
AUTH_REFUSED = Counter(
    "phoenix_gateway_auth_refused_total",
    "Requests refused for a missing or invalid credential, a twin mismatch or their origin.",
    ["transport", "reason"],
)
SSE_STREAMS = Gauge("phoenix_gateway_sse_streams", "Open telemetry streams.", ["app"])
