"""``GET /health``: liveness; it checks no dependency (they connect lazily)."""

from __future__ import annotations

from fastapi import APIRouter

from phoenix_common import __version__
from phoenix_orchestrator.api import Health

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> Health:
    return Health(service="phoenix-orchestrator", status="ok", version=__version__)
