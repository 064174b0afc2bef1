"""Prometheus metrics endpoint for processes without an HTTP app of their own."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

logger = logging.getLogger(__name__)


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - pods expose metrics
    """Serve /metrics on a background thread; port 0 disables it."""
    if port == 0:
        return
    start_http_server(port, addr=addr)
    logger.info("metrics endpoint listening", extra={"port": port, "addr": addr})
