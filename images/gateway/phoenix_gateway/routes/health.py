"""``GET /api/health``: liveness, no authentication (the original's plain-text reply)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["health"])


@router.get("/api/health", response_class=PlainTextResponse)
async def health() -> str:
    return "Gateway operational"
