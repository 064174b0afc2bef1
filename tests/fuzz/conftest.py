"""The fuzzed edge: the real services, hypothesis profiles, a tally per RPC and endpoint.

phoenix-memory runs on its embedded Qdrant Edge store with the real embedding
model; phoenix-tools runs commands under real bubblewrap and answers vector_query
from that same memory process. Both are started as the real console scripts, so
a crash in native code (Qdrant Edge, the tokenizer, bwrap) shows as a dead
process instead of taking pytest down with it. The orchestrator app is served
over HTTP on top of them (``orchestrator_url``), and the gateway in front of it
(``http_servers``).

Profiles (PHOENIX_FUZZ_PROFILE): "ci" (default) is derandomized, with a fixed
small budget per RPC, so CI sees the same cases every run; "fuzz" (make fuzz)
draws new cases each run, many more of them, and keeps failing examples in
~/.cache/phoenixtwin/hypothesis so the next run tries them first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from _pytest.terminal import TerminalReporter
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from scripts.cache import cache_root

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 600.0  # the embedding model loads in ~10 s idle, minutes under CI load
# One call, including the embedding of a 32 KiB text on a loaded machine; a call that
# takes longer is reported as a hang.
CALL_TIMEOUT_S = 120.0

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("PHOENIX_FUZZ_EXAMPLES", "20")),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("PHOENIX_FUZZ_EXAMPLES", "300")),
    database=DirectoryBasedExampleDatabase(str(cache_root() / "hypothesis")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("PHOENIX_FUZZ_PROFILE", "ci"))

TALLY: dict[str, Counter[str]] = {}


def tally(rpc: str, outcome: str) -> None:
    TALLY.setdefault(rpc, Counter())[outcome] += 1


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.section("fuzzed edge: cases per RPC and endpoint")
    for rpc, outcomes in sorted(TALLY.items()):
        detail = ", ".join(f"{code} {n}" for code, n in outcomes.most_common())
        terminalreporter.write_line(f"{rpc}: {sum(outcomes.values())} cases ({detail})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """A service process, its port, one channel to it, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.max_send_message_length", 16 * 1024 * 1024)],
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"{self.name} exited with status {self.process.returncode}; log:\n{self.log_tail()}"
            )

    def wait_serving(self) -> None:
        stub: Any = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        pytest.fail(f"{self.name} not SERVING after {START_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment minus anything that configures a PhoenixTwin service, plus ``overrides``."""
    prefixes = ("MEMORY_", "QDRANT_", "EMBEDDING_", "TWIN_", "TOOLS_", "SANDBOX_", "SAFE_MODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PHOENIX_LOG_FORMAT="text", HF_HUB_OFFLINE="1", **overrides)
    return env


def spawn(name: str, log: Path, port: int, env: dict[str, str]) -> Service:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / f"phoenix-{name}")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(name, process, port, log)
    try:
        service.wait_serving()
    except BaseException:
        service.stop()
        raise
    return service


# Package scope, not session: the services (and the tools service's warm sandboxes, processes
# of the sandbox uid) must be gone before tests/tools counts that uid's processes.
@pytest.fixture(scope="package")
def fuzz_dir() -> Iterator[Path]:
    # Under /tmp with 0755: the tools sandbox's unprivileged uid must traverse into it.
    root = Path(tempfile.mkdtemp(prefix="phx-fuzz-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def memory_service(fuzz_dir: Path) -> Iterator[Service]:
    port = free_port()
    env = clean_env(
        MEMORY_BACKEND="edge",
        MEMORY_DATA_DIR=str(fuzz_dir / "memory"),
        MEMORY_GRPC_HOST="127.0.0.1",
        MEMORY_GRPC_PORT=str(port),
        MEMORY_METRICS_PORT="0",
        TWIN_NAMESPACE="fuzz",
        TWIN_NAME="edge",
    )
    service = spawn("memory", fuzz_dir / "memory.log", port, env)
    yield service
    service.stop()


TOOLS_POLICY = """
# Twins for the fuzzed edge: every tool, but only harmless programs, so that a
# random command is either refused by policy or runs something that cannot hurt.
restricted: [rm, delete, format, shutdown, reboot]
twins:
  twin-fuzz:
    allowed: [command_exec, file_write, vector_query, echo, cat, "true", printf, ls, wc]
    programs: [echo, cat, "true", printf, ls, wc]
  twin-readonly: {allowed: [vector_query]}
"""


@pytest.fixture(scope="package")
def tools_service(fuzz_dir: Path, memory_service: Service) -> Iterator[Service]:
    port = free_port()
    policy = fuzz_dir / "policy.yaml"
    policy.write_text(TOOLS_POLICY)
    sandbox = fuzz_dir / "sandbox"
    env = clean_env(
        SANDBOX_DIR=str(sandbox),
        TOOLS_POLICY_FILE=str(policy),
        TOOLS_GRPC_HOST="127.0.0.1",
        TOOLS_GRPC_PORT=str(port),
        TOOLS_METRICS_PORT="0",
        TOOLS_EXEC_TIMEOUT_MS="5000",
        TOOLS_USE_BWRAP="true",
        TOOLS_ALLOW_UNSANDBOXED="false",
        MEMORY_GRPC_ADDR=f"127.0.0.1:{memory_service.port}",
        # Generous: an embedding under CI load must not turn into UNAVAILABLE.
        TOOLS_MEMORY_TIMEOUT_MS="60000",
    )
    service = spawn("tools", fuzz_dir / "tools.log", port, env)
    yield service
    service.stop()


@pytest.fixture(scope="package")
def orchestrator_url(
    fuzz_dir: Path, memory_service: Service, tools_service: Service
) -> Iterator[str]:
    """The real orchestrator app over HTTP, on the session's memory and tools."""
    from tests.fuzz import http_servers  # here: it imports this module

    with http_servers.orchestrator(fuzz_dir / "orchestrator", memory_service, tools_service) as (
        _,
        url,
    ):
        yield url
        still_answers(url + "/health")


def still_answers(url: str) -> None:
    answer = requests.get(url, timeout=CALL_TIMEOUT_S)
    assert answer.status_code == 200, f"{url} after the fuzzing: {answer.status_code}"
