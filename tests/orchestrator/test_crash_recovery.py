"""Exactly once across ``kill -9``: a real orchestrator process, killed at every stage.

The orchestrator runs as its own process (``python -m phoenix_orchestrator``)
on a state directory that outlives it; memory and tools are the in-test gRPC
peers, which count every call by request id. Whatever moment the process is
killed at, a request is never run twice; a request that was pending is still
pending and runs once when approved; a session grant still holds; a run that
was in flight when the process died is reported ``interrupted``, not run again.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix_orchestrator.approvals import ApprovalRequest, AuditEntry
from phoenix_orchestrator.approvals.db import Database
from phoenix_orchestrator.approvals.patterns import arguments_hash
from phoenix_orchestrator.approvals.store import ApprovalStore
from tests.orchestrator.conftest import GrpcPeers, Starter, unused_port
from tests.stress.load import BuildLoad

TWIN, SESSION = "twin-sentinel", "sess-crash"
CYCLES = int(os.environ.get("PHOENIX_CRASH_CYCLES", "6"))

Spawn = Callable[[], Awaitable[httpx.AsyncClient]]


class Orchestrator:
    """One orchestrator process at a time on one state directory."""

    def __init__(self, state: Path, peers: GrpcPeers) -> None:
        self.state = state
        self.peers = peers
        self.port = unused_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = state.parent / "orchestrator.log"

    async def start(self) -> httpx.AsyncClient:
        env = {
            **os.environ,
            "ORCHESTRATOR_HTTP_HOST": "127.0.0.1",
            "ORCHESTRATOR_HTTP_PORT": str(self.port),
            "ORCHESTRATOR_STATE_DIR": str(self.state),
            "MEMORY_GRPC_ADDR": self.peers.memory_addr,
            "TOOLS_GRPC_ADDR": self.peers.tools_addr,
            "LLM_PROVIDER": "mock",
            "PHOENIX_LOG_FORMAT": "text",
        }
        self.process = _spawn(env, self.log)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if (await client.get("/health")).status_code == 200:
                    return client
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the orchestrator did not start"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a node or the OOM killer takes the Pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self.process = None


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start the orchestrator; Popen returns at once, the test then drives it over HTTP."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "phoenix_orchestrator"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def orchestrator(tmp_path: Path, peers: GrpcPeers) -> AsyncIterator[Orchestrator]:
    process = Orchestrator(tmp_path / "state", peers)
    try:
        yield process
    finally:
        process.kill()


async def chat(client: httpx.AsyncClient, message: str) -> dict[str, Any]:
    reply = await client.post(
        "/chat", json={"message": message, "twin_id": TWIN, "session_id": SESSION}
    )
    body: dict[str, Any] = reply.json()
    return body


async def approve(client: httpx.AsyncClient, request_id: str, **extra: Any) -> httpx.Response:
    return await client.post(
        f"/v1/approvals/{request_id}/approve",
        json={"session_id": SESSION, "twin_id": TWIN, **extra},
        headers={"X-Phoenix-Principal": "api_key:0123456789ab"},
    )


async def status(client: httpx.AsyncClient, request_id: str) -> str:
    record = (await client.get(f"/v1/approvals/{request_id}")).json()
    return str(record["status"])


def runs_of(peers: GrpcPeers) -> collections.Counter[str]:
    return collections.Counter(r.metadata["request_id"] for r in peers.tools.requests)


async def test_a_pending_approval_survives_kill_9_and_runs_once(
    tmp_path: Path, peers: GrpcPeers
) -> None:
    async with orchestrator(tmp_path, peers) as process:
        client = await process.start()
        asked = await chat(client, "write a file")
        process.kill()
        client = await process.start()
        assert await status(client, asked["request_id"]) == "pending"
        ran = await approve(client, asked["request_id"])
        again = await approve(client, asked["request_id"])
        process.kill()
        client = await process.start()
        final = await status(client, asked["request_id"])
    assert ran.status_code == 200, ran.text
    assert again.status_code == 409
    assert final == "executed"
    assert runs_of(peers) == {asked["request_id"]: 1}


async def test_a_session_grant_survives_kill_9(tmp_path: Path, peers: GrpcPeers) -> None:
    async with orchestrator(tmp_path, peers) as process:
        client = await process.start()
        asked = await chat(client, "write a file")
        granted = await approve(client, asked["request_id"], scope="session")
        process.kill()
        client = await process.start()
        covered = await chat(client, "write another file")
    assert granted.status_code == 200
    assert covered["response"].startswith("Tool 'command_exec' executed successfully.")
    assert len(runs_of(peers)) == 2
    assert set(runs_of(peers).values()) == {1}


async def test_a_run_in_flight_at_kill_9_is_interrupted_never_repeated(
    tmp_path: Path, peers: GrpcPeers
) -> None:
    peers.tools.hold = asyncio.Event()
    async with orchestrator(tmp_path, peers) as process:
        client = await process.start()
        asked = await chat(client, "write a file")
        approval = asyncio.create_task(approve(client, asked["request_id"]))
        await asyncio.wait_for(peers.tools.holding.wait(), 30)  # the call is at the tools
        process.kill()
        peers.tools.hold.set()
        with pytest.raises(httpx.TransportError):
            await approval
        client = await process.start()
        record = (await client.get(f"/v1/approvals/{asked['request_id']}")).json()
        again = await approve(client, asked["request_id"])
    assert record["status"] == "interrupted"
    assert record["audit"][-1]["event"] == "interrupted"
    assert again.status_code == 409
    assert runs_of(peers) == {asked["request_id"]: 1}


async def test_an_approval_never_claimed_is_run_at_the_next_start(
    tmp_path: Path, peers: GrpcPeers, start: Starter, make_settings: Any
) -> None:
    """The window between the decision's commit and the claim's: approved, never started."""
    now = datetime.now(UTC)
    arguments = {"cmd": "echo recovered"}
    approved = ApprovalRequest(
        request_id="req-approved",
        kind="tool",
        twin_id=TWIN,
        session_id=SESSION,
        namespace="default",
        tool_name="command_exec",
        arguments=arguments,
        arguments_hash=arguments_hash("tool", "command_exec", arguments),
        raw_decision="{}",
        planner="deterministic",
        created_at=now,
        expires_at=now + timedelta(minutes=10),
        status="approved",
        decided_by="alice",
        decided_at=now,
    )
    running = approved.model_copy(update={"request_id": "req-running", "status": "running"})
    settings = make_settings()
    db = Database(settings.database_path)
    store = ApprovalStore(db)
    for request in (approved, running):
        entry = AuditEntry(
            request_id=request.request_id, event="requested", actor="t", channel="t", at=now
        )
        await store.add(request, entry)
    db.close()
    async with start() as client:

        async def done() -> bool:
            return await status(client, "req-approved") == "executed"

        deadline = time.monotonic() + 30
        while not await done():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        interrupted = await status(client, "req-running")
    assert interrupted == "interrupted"
    assert runs_of(peers) == {"req-approved": 1}
    assert list(peers.tools.requests[0].args) == ["echo recovered"]


@pytest.fixture
def build_load() -> Iterator[BuildLoad]:
    with BuildLoad() as load:
        yield load


@pytest.mark.stress
async def test_kill_9_at_random_moments_never_runs_a_call_twice(
    tmp_path: Path, peers: GrpcPeers, build_load: BuildLoad
) -> None:
    """Approve, kill at a random moment, restart, approve again, under build-like load: each
    call runs at most once, and exactly once unless the kill caught it in flight (then it is
    ``interrupted``). ``PHOENIX_CRASH_CYCLES`` sets the number of kills (6)."""
    rng = random.Random(15)  # noqa: S311 - reproducible kill moments, not a secret
    outcomes: collections.Counter[str] = collections.Counter()
    async with orchestrator(tmp_path, peers) as process:
        client = await process.start()
        for _ in range(CYCLES):
            asked = await chat(client, "write a file")
            rid = asked["request_id"]
            attempt = asyncio.create_task(approve(client, rid))
            await asyncio.sleep(rng.uniform(0, 0.05))
            process.kill()
            await asyncio.gather(attempt, return_exceptions=True)
            client = await process.start()
            state = await status(client, rid)
            deadline = time.monotonic() + 30
            # Recovered at start: claimed and run in the background, so "approved" and then
            # "running" until it is done. A run stuck in either state fails the deadline.
            while state in ("approved", "running"):
                assert time.monotonic() < deadline, f"{rid} still {state} after 30 s"
                await asyncio.sleep(0.02)
                state = await status(client, rid)
            if state == "pending":
                assert (await approve(client, rid)).status_code == 200
                state = await status(client, rid)
            outcomes[state] += 1
            assert (await approve(client, rid)).status_code == 409
            runs = runs_of(peers)[rid]
            assert state in ("executed", "interrupted"), state
            if state == "executed":
                assert runs == 1, f"{rid} executed but ran {runs} times"
            else:  # killed while the call was in flight: it may or may not have happened
                assert runs <= 1, f"{rid} ran {runs} times"
    assert sum(outcomes.values()) == CYCLES
