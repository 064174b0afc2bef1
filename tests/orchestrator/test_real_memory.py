"""Approval runs a memory query against a real ``phoenix-memory`` process (edge store).

Embeddings come from a tiny OpenAI-compatible ``/embeddings`` server in the test
(bag-of-words hashing), so no model is loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_orchestrator.app import create_app
from tests.orchestrator.conftest import FakeClock, SettingsFactory, serving, unused_port

DIM = 32
SESSION = {"twin_id": "twin-sentinel", "session_id": "real-memory"}


def embed(text: str) -> list[float]:
    vector = [0.0] * DIM
    vector[-1] = 0.1
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip("?.,!").encode()).digest()
        vector[digest[0] % (DIM - 1)] += 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


@pytest.fixture
def embeddings_url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            texts: list[str] = body["input"]
            reply: dict[str, Any] = {
                "data": [{"index": i, "embedding": embed(t)} for i, t in enumerate(texts)]
            }
            payload = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def memory_process(
    tmp_path: Path, embeddings_url: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = unused_port()
    env = {
        **os.environ,
        "MEMORY_GRPC_HOST": "127.0.0.1",
        "MEMORY_GRPC_PORT": str(port),
        "MEMORY_METRICS_PORT": "0",
        "MEMORY_BACKEND": "edge",
        "MEMORY_DATA_DIR": str(tmp_path / "edge"),
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_URL": embeddings_url,
        "EMBEDDING_MODEL": "test-bow",
        "EMBEDDING_MODEL_DIM": str(DIM),
        "PHOENIX_LOG_FORMAT": "text",
    }
    log = (tmp_path / "memory.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "phoenix_memory"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        sys.stderr.write((tmp_path / "memory.log").read_text()[-3000:])  # shown on failure


async def commit_when_ready(address: str, process: subprocess.Popen[bytes], content: str) -> str:
    """Commit one memory once the service reports SERVING; its id.

    Readiness is the gRPC health check, polled for as long as a busy CI machine needs to
    start the process; the commit itself is sent once (it is not idempotent), with a deadline
    that leaves room for the first embedding under load."""
    async with grpc.aio.insecure_channel(address.removeprefix("http://")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"phoenix-memory exited with status {process.returncode}")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError as err:
                if loop.time() > deadline:
                    raise AssertionError("phoenix-memory never became SERVING") from err
            if loop.time() > deadline:
                pytest.fail("phoenix-memory never became SERVING")
            await asyncio.sleep(0.2)
        stub = memory_pb2_grpc.MemoryServiceStub(channel)  # type: ignore[no-untyped-call]
        request = memory_pb2.CommitMemoryRequest(
            content=content,
            namespace="default",
            twin_id=SESSION["twin_id"],
            memory_type="Semantic",
            risk_level="Low",
        )
        committed = await stub.CommitMemory(request, timeout=60)
        memory_id: str = committed.memory_id
        return memory_id


async def test_approved_memory_query_returns_real_memory_ids(
    make_settings: SettingsFactory,
    clock: FakeClock,
    memory_process: tuple[str, subprocess.Popen[bytes]],
) -> None:
    memory_addr, process = memory_process
    memory_id = await commit_when_ready(memory_addr, process, "the vault code is 1234")
    # The answer, not the deadline, is under test: a loaded CI machine gets a minute.
    settings = make_settings(memory_grpc_addr=memory_addr, memory_rpc_timeout_seconds=60)
    async with serving(create_app(settings, clock=clock)) as client:
        asked = (
            await client.post("/chat", json={"message": "search the vault code", **SESSION})
        ).json()
        shown = await client.post(
            "/chat", json={"message": f"[MEMORY_SHOWN] {asked['request_id']}", **SESSION}
        )
    body = shown.json()
    assert shown.status_code == 200, body
    assert memory_id in body["source_memories"]
    assert "the vault code is 1234" in body["response"]
