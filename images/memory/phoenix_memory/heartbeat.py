"""Watch the storage backend every 15 s; log loss and recovery, never exit.

On loss the service reports NOT_SERVING on grpc.health.v1 (so Kubernetes stops
routing to it) and logs CRITICAL once; on recovery it logs once at INFO and
reports SERVING again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import Enum

from phoenix_common.errors import DependencyUnavailable
from phoenix_memory.metrics import STORAGE_UP
from phoenix_memory.store.base import MemoryStore

logger = logging.getLogger(__name__)


class Change(Enum):
    LOST = "lost"
    RESTORED = "restored"


def transition(was_healthy: bool, healthy: bool) -> Change | None:
    """What changed between two consecutive checks, if anything."""
    if was_healthy and not healthy:
        return Change.LOST
    if healthy and not was_healthy:
        return Change.RESTORED
    return None


async def watch(
    store: MemoryStore,
    *,
    interval_s: float,
    on_change: Callable[[bool], Awaitable[None]],
) -> None:
    """Check ``store`` every ``interval_s`` until cancelled."""
    healthy = True
    STORAGE_UP.set(1)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await store.ping()
            now_healthy = True
        except DependencyUnavailable:
            now_healthy = False
        STORAGE_UP.set(1 if now_healthy else 0)
        change = transition(healthy, now_healthy)
        if change is Change.LOST:
            logger.critical(
                "CRITICAL: Lost connectivity to Qdrant", extra={"store": store.description}
            )
        elif change is Change.RESTORED:
            logger.info("Qdrant connectivity restored", extra={"store": store.description})
        if change is not None:
            await on_change(now_healthy)
        healthy = now_healthy
