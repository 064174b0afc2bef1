"""The telemetry producer's own Prometheus metrics, rendered without prometheus_client.

Why by hand: prometheus_client's import (its exposition module pulls in
http.server, wsgiref and urllib) costs this process 2.7 MiB of its 32 MiB
budget, to render two counters and a gauge. The text format (version 0.0.4) is
simple and stable; names and labels match the gateway's (``phoenix_gateway.metrics``).
"""

from __future__ import annotations

from collections import Counter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TelemetryMetrics:
    """Requests answered (by route, method, status) and streams open."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.open_streams = 0

    def render(self) -> bytes:
        lines = [
            "# HELP phoenix_gateway_http_requests_total HTTP requests answered, by route "
            "template, method and status code.",
            "# TYPE phoenix_gateway_http_requests_total counter",
        ]
        for (route, method, status), count in sorted(self.requests.items()):
            labels = f'app="telemetry",route="{route}",method="{method}",status="{status}"'
            lines.append(f"phoenix_gateway_http_requests_total{{{labels}}} {float(count)}")
        lines += [
            "# HELP phoenix_gateway_sse_streams Open telemetry streams.",
            "# TYPE phoenix_gateway_sse_streams gauge",
            f'phoenix_gateway_sse_streams{{app="telemetry"}} {float(self.open_streams)}',
        ]
        return ("\n".join(lines) + "\n").encode()
