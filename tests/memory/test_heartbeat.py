"""The heartbeat logs loss and recovery once each, flips grpc.health, and never exits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from phoenix_memory.heartbeat import Change, transition
from phoenix_memory.store.edge import EdgeStore

from .conftest import StartServer


def test_transition_reports_only_edges() -> None:
    assert transition(True, False) is Change.LOST
    assert transition(False, True) is Change.RESTORED
    assert transition(True, True) is None
    assert transition(False, False) is None


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` for up to 5 s."""
    for _ in range(250):
        if predicate():
            return
        await asyncio.sleep(0.02)
    pytest.fail("condition not met within 5 s")


async def test_lost_and_restored_storage_is_logged_and_reported(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "edge"
    server = await start_server(EdgeStore(data_dir), heartbeat_s=0.05)
    caplog.set_level(logging.INFO, logger="phoenix_memory.heartbeat")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            return int(reply.status)

        # A file where the data directory should be: the store cannot work.
        await asyncio.sleep(0.1)
        data_dir.rmdir()
        data_dir.write_text("not a directory")
        await wait_for(lambda: any(r.levelno == logging.CRITICAL for r in caplog.records))
        lost = [r for r in caplog.records if r.levelno == logging.CRITICAL]
        assert lost[0].getMessage() == "CRITICAL: Lost connectivity to Qdrant"
        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING

        data_dir.unlink()
        await wait_for(lambda: any("restored" in r.getMessage() for r in caplog.records))
        assert await status() == health_pb2.HealthCheckResponse.SERVING
        assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 1
        assert server.tasks  # the heartbeat
        assert not server.tasks[0].done()
