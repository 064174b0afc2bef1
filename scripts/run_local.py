"""``make run``: the whole platform on 127.0.0.1, on embedded defaults, until Ctrl-C.

Starts, in order, each waiting for the previous one to be healthy:

1. memory (``MEMORY_BACKEND=edge``, embedded Qdrant Edge under ``.phoenix/memory``),
2. tools (bubblewrap when ``bwrap`` is on PATH, else the unsandboxed fallback, loudly),
3. orchestrator (the deterministic planner unless ``OPENROUTER_API_KEY`` is set;
   approvals under ``.phoenix/orchestrator``),
4. telemetry (``phoenix-gateway telemetry``),
5. the gateway on http://127.0.0.1:8181/, with the console logged in for loopback visitors.

A local API key is generated once into ``.phoenix/api-key`` (mode 0600) with the
gateway's keys file beside it (``PHOENIX_STATE_DIR`` moves ``.phoenix``; the
original's port variables move the ports). An existing ``.env`` is honoured (the original's
variable names); the process environment wins over it. Ctrl-C (SIGINT) or
SIGTERM stops every process group; data stays in ``.phoenix`` for the next run.

The launcher (``LocalStack``) is also what the whole-stack tests use, on free
ports and a temporary directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from dotenv import dotenv_values
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TWIN = "twin-sentinel"  # the original's tool policy lets this twin run command_exec
ORDER = ("memory", "tools", "orchestrator", "telemetry", "gateway")
READY_TIMEOUT_S = 180.0
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (for tests; racy by nature)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ports:
    memory: int = 50052
    tools: int = 50054
    orchestrator: int = 8182
    telemetry: int = 8183
    gateway: int = 8181

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


@dataclass
class StackConfig:
    """Where the stack keeps its state and logs, its ports, and extra environment."""

    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    twin: str = DEFAULT_TWIN
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    autologin: bool = True
    output: Callable[[str], None] = print
    # The sandbox's processes run as an unprivileged uid, so every directory above
    # it must be traversable by others (mkdtemp's and pytest's 0700 dirs are not).
    sandbox_dir: Path | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def orchestrator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.orchestrator}"

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api-key"

    @property
    def keys_file(self) -> Path:
        return self.state_dir / "gateway-keys.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def ensure_api_key(config: StackConfig) -> str:
    """The local API key, generated on first use; the keys file is rewritten from it."""
    if config.api_key_file.exists():
        key = config.api_key_file.read_text(encoding="utf-8").strip()
    else:
        key = secrets.token_urlsafe(32)
        _write_private(config.api_key_file, key + "\n")
    _write_private(config.keys_file, json.dumps({config.twin: [key]}, indent=2) + "\n")
    return key


def base_environment(config: StackConfig) -> dict[str, str]:
    """os.environ over ``.env`` (in the stack's cwd) over run_local's defaults."""
    env = {"PHOENIX_LOG_FORMAT": "text", "LOG_LEVEL": "info"}
    dotenv = config.cwd / ".env"
    if dotenv.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    env.update(os.environ)
    env.update(config.env)
    return env


def component_environments(
    config: StackConfig, base: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Each component's environment: addresses and state paths are always the stack's own."""
    ports, state = config.ports, config.state_dir.resolve()
    memory_addr = f"http://127.0.0.1:{ports.memory}"
    bwrap = shutil.which("bwrap") is not None
    provider = base.get("LLM_PROVIDER") or (
        "openrouter" if base.get("OPENROUTER_API_KEY") else "mock"
    )
    envs = {
        "memory": {
            "MEMORY_GRPC_HOST": "127.0.0.1",
            "MEMORY_GRPC_PORT": str(ports.memory),
            "MEMORY_BACKEND": base.get("MEMORY_BACKEND", "edge"),
            "MEMORY_DATA_DIR": str(state / "memory"),
            "MEMORY_METRICS_PORT": base.get("MEMORY_METRICS_PORT", "0"),
            "TWIN_NAMESPACE": base.get("TWIN_NAMESPACE", "local"),
            "TWIN_NAME": base.get("TWIN_NAME", config.twin),
        },
        "tools": {
            "TOOLS_GRPC_HOST": "127.0.0.1",
            "TOOLS_GRPC_PORT": str(ports.tools),
            "TOOLS_METRICS_PORT": base.get("TOOLS_METRICS_PORT", "0"),
            "SANDBOX_DIR": str(config.sandbox_dir or state / "sandbox"),
            "TOOLS_USE_BWRAP": "true" if bwrap else "false",
            "TOOLS_ALLOW_UNSANDBOXED": base.get(
                "TOOLS_ALLOW_UNSANDBOXED", "false" if bwrap else "true"
            ),
            "MEMORY_GRPC_ADDR": memory_addr,
        },
        "orchestrator": {
            "ORCHESTRATOR_HTTP_HOST": "127.0.0.1",
            "ORCHESTRATOR_HTTP_PORT": str(ports.orchestrator),
            "MEMORY_GRPC_ADDR": memory_addr,
            "TOOLS_GRPC_ADDR": f"http://127.0.0.1:{ports.tools}",
            "LLM_PROVIDER": provider,
            "ORCHESTRATOR_STATE_DIR": str(state / "orchestrator"),
        },
        "telemetry": {"TELEMETRY_HOST": "127.0.0.1", "TELEMETRY_PORT": str(ports.telemetry)},
        "gateway": {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(ports.gateway),
            "ORCHESTRATOR_URL": config.orchestrator_url,
            "TELEMETRY_URL": f"http://127.0.0.1:{ports.telemetry}",
            "GATEWAY_API_KEYS_FILE": str(config.keys_file.resolve()),
            "GATEWAY_LOCAL_CONSOLE_AUTOLOGIN": "true" if config.autologin else "false",
            "GATEWAY_LOCAL_CONSOLE_TWIN": config.twin,
        },
    }
    return {
        name: {**base, **own, "OTEL_SERVICE_NAME": f"phoenix-{name}"} for name, own in envs.items()
    }


COMMANDS: dict[str, list[str]] = {
    "memory": [sys.executable, "-m", "phoenix_memory"],
    "tools": [sys.executable, "-m", "phoenix_tools"],
    "orchestrator": [sys.executable, "-m", "phoenix_orchestrator"],
    "telemetry": [sys.executable, "-m", "phoenix_gateway", "telemetry"],
    "gateway": [sys.executable, "-m", "phoenix_gateway"],
}


def _grpc_serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as reply:  # noqa: S310 - loopback only
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class StackError(RuntimeError):
    """A component did not start or stopped by itself; the message names it and its log."""


class LocalStack:
    """Starts the components as process groups, waits for health, stops them all."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._envs: dict[str, dict[str, str]] = {}
        self.api_key = ""

    @property
    def planner(self) -> str:
        return self._envs["orchestrator"]["LLM_PROVIDER"]

    def probe(self, name: str) -> bool:
        ports = self.config.ports
        if name == "memory":
            return _grpc_serving(ports.memory)
        if name == "tools":
            return _grpc_serving(ports.tools)
        if name == "orchestrator":
            return _http_ok(f"{self.config.orchestrator_url}/health")
        if name == "telemetry":
            return _http_ok(f"http://127.0.0.1:{ports.telemetry}/health")
        return _http_ok(f"{self.config.gateway_url}/api/health")

    def prepare(self) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        config.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = ensure_api_key(config)
        base = base_environment(config)
        self._envs = component_environments(config, base)
        if self._envs["tools"]["TOOLS_USE_BWRAP"] != "true":
            banner = "!" * 78
            config.output(
                f"{banner}\nWARNING: bubblewrap (bwrap) is not on PATH: tools run UNSANDBOXED\n"
                "(TOOLS_ALLOW_UNSANDBOXED=true), with only a private working directory.\n"
                f"Install it (apt-get install bubblewrap) for the real sandbox.\n{banner}"
            )

    def start(self, name: str) -> None:
        """Start one component and wait until it is healthy."""
        log_path = self.config.log_dir / f"{name}.log"
        log = log_path.open("ab")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            COMMANDS[name],
            env=self._envs[name],
            cwd=self.config.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
            preexec_fn=_die_with_launcher,  # noqa: PLW1509 - only calls prctl
        )
        log.close()
        self.processes[name] = process
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode} while starting; "
                    f"see {log_path}:\n{tail(log_path)}"
                )
            if self.probe(name):
                return
            time.sleep(0.2)
        raise StackError(f"{name} was not healthy after {READY_TIMEOUT_S:.0f} s; see {log_path}")

    def start_all(self) -> None:
        self.prepare()
        for name in ORDER:
            started = time.monotonic()
            self.start(name)
            self.config.output(f"  {name:<13} ready ({time.monotonic() - started:.1f} s)")

    def stop(self, name: str) -> int | None:
        """SIGTERM the component's process group, SIGKILL after the grace period."""
        process = self.processes.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(5)
        _signal_group(process.pid, signal.SIGKILL)  # anything the component left behind
        return process.returncode

    def restart(self, name: str, **env: str) -> None:
        """Stop and start one component, with ``env`` added to its environment from now on."""
        self.stop(name)
        self._envs[name].update(env)
        self.start(name)

    def stop_all(self) -> None:
        for name in reversed(ORDER):
            self.stop(name)

    def exited(self) -> dict[str, int]:
        """Components that stopped by themselves, with their exit codes."""
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def log(self, name: str) -> str:
        path = self.config.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> LocalStack:
        try:
            self.start_all()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()


def _die_with_launcher() -> None:
    """In the child: SIGTERM it if the launcher dies without stopping it (Linux only)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    base = base_environment(StackConfig(state_dir=REPO / ".phoenix"))
    state_dir = Path(base.get("PHOENIX_STATE_DIR", REPO / ".phoenix"))
    ports = Ports(
        memory=int(base.get("MEMORY_GRPC_PORT", 50052)),
        tools=int(base.get("TOOLS_GRPC_PORT", 50054)),
        orchestrator=int(base.get("ORCHESTRATOR_HTTP_PORT", 8182)),
        telemetry=int(base.get("TELEMETRY_PORT", 8183)),
        gateway=int(base.get("GATEWAY_PORT", 8181)),
    )
    config = StackConfig(state_dir=state_dir, ports=ports)
    stack = LocalStack(config)
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(
        f"Starting PhoenixTwin from {REPO} (state in {config.state_dir}, logs in {config.log_dir})"
    )
    try:
        for name in ORDER:
            if stop.is_set():
                return 130
            if name == "memory":
                stack.prepare()
            started = time.monotonic()
            stack.start(name)
            print(f"  {name:<13} ready ({time.monotonic() - started:.1f} s)")
        planner = stack.planner
        print(
            f"\nPhoenixTwin is up: {config.gateway_url}/\n"
            f"  twin {config.twin}, planner {planner}; the console at / logs in by itself "
            f"from this machine.\n"
            f"  API key for other clients: {config.api_key_file} "
            f"(Authorization: Bearer <key>)\n  Ctrl-C stops everything; data stays in "
            f"{config.state_dir}.",
            flush=True,
        )
        while not stop.wait(1.0):
            if gone := stack.exited():
                name, code = next(iter(gone.items()))
                print(f"\n{name} stopped (exit code {code}); last lines of its log:", flush=True)
                print(tail(config.log_dir / f"{name}.log"), flush=True)
                return 1
        print("\nStopping...", flush=True)
        return 0
    except StackError as err:
        print(f"\nmake run failed: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
