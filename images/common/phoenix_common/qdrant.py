"""The one way PhoenixTwin connects to a Qdrant server, shared by the memory service and the
operator (which imports it only when it reclaims a twin's memories).

``QDRANT_URL`` names Qdrant's gRPC endpoint (port 6334), as in the original.
qdrant-client is imported when a client is built, never at module import, so
importing phoenix_common costs nothing in components that never talk to Qdrant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

DEFAULT_GRPC_PORT = 6334


def describe(url: str) -> str:
    """``host:port`` of a Qdrant URL, for log lines and errors (never the API key)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or DEFAULT_GRPC_PORT}"


def connect(url: str, *, api_key: str | None, timeout_s: float) -> AsyncQdrantClient:
    """An AsyncQdrantClient for the gRPC endpoint ``url``; it connects on its first call."""
    from qdrant_client import AsyncQdrantClient  # noqa: PLC0415  (numpy, grpc, pydantic models)

    parts = urlsplit(url)
    return AsyncQdrantClient(
        host=parts.hostname or "127.0.0.1",
        grpc_port=parts.port or DEFAULT_GRPC_PORT,
        prefer_grpc=True,
        https=parts.scheme == "https",
        api_key=api_key,
        timeout=max(1, round(timeout_s)),
        # The version check is a blocking REST call to port 6333 at construction.
        check_compatibility=False,
    )
