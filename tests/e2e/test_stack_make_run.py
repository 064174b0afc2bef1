"""``make run`` itself: ``python -m scripts.run_local`` up, Ctrl-C down, its state kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from scripts.localstack import REPO, Ports

UP_LINE = "PhoenixTwin is up:"


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # World-traversable: the sandbox below it runs as an unprivileged uid.
    path = Path(tempfile.mkdtemp(prefix="phoenix-make-run-"))
    path.chmod(0o755)
    yield path / ".phoenix"
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _memory_stub(channel: Any) -> Any:
    stub_class: Any = memory_pb2_grpc.MemoryServiceStub  # the generated stub is untyped
    return stub_class(channel)


def start_run_local(state_dir: Path, ports: Ports) -> tuple[subprocess.Popen[str], list[str]]:
    env = {
        **os.environ,
        "PHOENIX_STATE_DIR": str(state_dir),
        "MEMORY_GRPC_PORT": str(ports.memory),
        "TOOLS_GRPC_PORT": str(ports.tools),
        "ORCHESTRATOR_HTTP_PORT": str(ports.orchestrator),
        "TELEMETRY_PORT": str(ports.telemetry),
        "GATEWAY_PORT": str(ports.gateway),
    }
    env.pop("OPENROUTER_API_KEY", None)
    env.pop("LLM_PROVIDER", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_local"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line.rstrip())
        if line.startswith(UP_LINE):
            lines.extend(process.stdout.readline().rstrip() for _ in range(3))
            return process, lines
    process.kill()
    pytest.fail("run_local did not come up:\n" + "\n".join(lines))


def stop_with_ctrl_c(process: subprocess.Popen[str]) -> tuple[int, list[int]]:
    """SIGINT, as Ctrl-C sends it; returns the exit code and the children still alive."""
    children = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
    assert children, "run_local started no processes"
    process.send_signal(signal.SIGINT)
    code = process.wait(60)
    time.sleep(0.5)
    return code, [pid for pid in children if psutil.pid_exists(pid) and not _zombie(pid)]


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_make_run_starts_everything_stops_on_ctrl_c_and_keeps_its_state(
    state_dir: Path,
) -> None:
    ports = Ports.free()
    process, lines = start_run_local(state_dir, ports)
    try:
        key_file = state_dir / "api-key"
        key = key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert (state_dir / "gateway-keys.json").stat().st_mode & 0o777 == 0o600
        assert f"{UP_LINE} http://127.0.0.1:{ports.gateway}/" in lines
        assert key not in "\n".join(lines)  # the key is never printed
        assert any("planner mock" in line for line in lines)
        with httpx.Client(base_url=f"http://127.0.0.1:{ports.gateway}") as client:
            console = client.get("/", headers={"Host": f"localhost:{ports.gateway}"})
            assert "phoenix_session=" in console.headers["set-cookie"]
            assert client.get("/api/whoami").json()["twin_id"] == "twin-sentinel"
        with grpc.insecure_channel(f"127.0.0.1:{ports.memory}") as channel:
            committed = _memory_stub(channel).CommitMemory(
                memory_pb2.CommitMemoryRequest(
                    content="kept across runs",
                    namespace="default",
                    twin_id="twin-sentinel",
                    memory_type="Semantic",
                    risk_level="Low",
                ),
                timeout=30,
            )
        assert committed.success
    finally:
        code, alive = stop_with_ctrl_c(process)
    assert code == 0
    assert alive == []

    process, _ = start_run_local(state_dir, ports)
    try:
        assert (state_dir / "api-key").read_text().strip() == key  # generated once
        with grpc.insecure_channel(f"127.0.0.1:{ports.memory}") as channel:
            found = _memory_stub(channel).QueryMemory(
                memory_pb2.QueryMemoryRequest(
                    query="kept across runs",
                    namespace="default",
                    twin_id="twin-sentinel",
                    top_k=5,
                ),
                timeout=30,
            )
        assert committed.memory_id in [r.id for r in found.results]
    finally:
        code, alive = stop_with_ctrl_c(process)
    assert (code, alive) == (0, [])
