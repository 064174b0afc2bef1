"""The original's acceptance calls, with grpcurl, against `phoenix-memory` as a real process.

Run once with the proto file and once through server reflection; then the process
is killed (SIGKILL) and restarted on the same storage, and the memory is still there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from phoenix_common.naming import TwinRef

from .conftest import REPO, Backend, free_port
from .qdrant_server import QdrantEndpoint

COMMIT = {
    "content": "hello qdrant",
    "namespace": "qdrant_test",
    "twin_id": "twin-1",
    "memory_type": "Episodic",
    "risk_level": "Low",
    "metadata": {"source": "qdrant_test.md"},
}
QUERY = {"query": "hello", "namespace": "qdrant_test", "twin_id": "twin-1", "top_k": 5}


class Grpcurl:
    def __init__(self, binary: Path, port: int) -> None:
        self.binary = binary
        self.address = f"127.0.0.1:{port}"

    def call(
        self, method: str, body: object = None, *, proto: bool = False, check: bool = True
    ) -> dict[str, object]:
        args = [str(self.binary), "-plaintext", "-max-time", "20"]
        if proto:
            args += ["-import-path", str(REPO / "protos"), "-proto", "memory.proto"]
        if body is not None:
            args += ["-d", json.dumps(body)]
        done = subprocess.run(
            [*args, self.address, method], check=False, capture_output=True, text=True, timeout=30
        )
        if check:
            assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.returncode == 0 else {}


def field(message: dict[str, object], name: str) -> object:
    """grpcurl prints JSON names (memoryId) with -proto, proto names (memory_id) via reflection."""
    head, *rest = name.split("_")
    camel = head + "".join(part.title() for part in rest)
    return message[name] if name in message else message[camel]


def wait_until_serving(grpcurl: Grpcurl, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"phoenix-memory exited with {process.returncode}"
        if grpcurl.call("grpc.health.v1.Health/Check", check=False).get("status") == "SERVING":
            return
        time.sleep(0.5)
    pytest.fail("phoenix-memory did not report SERVING in time")


def test_original_acceptance_calls_and_restart(  # noqa: PLR0917  (fixtures)
    grpcurl: Path,
    run_service: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
    backend: Backend,
    twin: TwinRef,
    server_qdrant: QdrantEndpoint | None,
) -> None:
    port = free_port()
    env = {
        "MEMORY_GRPC_PORT": str(port),
        "MEMORY_TENANCY": backend[1],
        "TWIN_NAMESPACE": twin.namespace,
        "TWIN_NAME": twin.name,
    }
    if server_qdrant is None:
        env |= {"MEMORY_BACKEND": "edge", "MEMORY_DATA_DIR": str(tmp_path / "edge")}
    else:
        env |= {"MEMORY_BACKEND": "qdrant", "QDRANT_URL": server_qdrant.grpc_url}
    client = Grpcurl(grpcurl, port)
    process = run_service(**env)
    wait_until_serving(client, process)

    committed_ids: set[object] = set()
    for proto in (True, False):  # -proto memory.proto, then server reflection
        health = client.call("memory.MemoryService/HealthCheck", {}, proto=proto)
        assert health["status"] == "healthy"
        committed = client.call("memory.MemoryService/CommitMemory", COMMIT, proto=proto)
        assert committed["success"] is True
        assert field(committed, "memory_id")
        committed_ids.add(field(committed, "memory_id"))
        found = client.call("memory.MemoryService/QueryMemory", QUERY, proto=proto)
        total = field(found, "total_count")
        assert isinstance(total, int)
        assert total >= 1
    assert client.call("grpc.health.v1.Health/Check")["status"] == "SERVING"
    assert client.call("grpc.health.v1.Health/Check", {"service": "memory.MemoryService"}) == {
        "status": "SERVING"
    }

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    restarted = run_service(**env)
    wait_until_serving(client, restarted)
    found = client.call("memory.MemoryService/QueryMemory", QUERY)
    assert field(found, "total_count") == 2
    results = found["results"]
    assert isinstance(results, list)
    assert {result["id"] for result in results} == committed_ids

    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(timeout=30) == 0
