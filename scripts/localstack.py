"""The local-stack launcher behind ``make run``, the whole-stack tests and the chat benchmark.

``LocalStack`` starts the five components as their own process groups, waits for
each to be healthy, and stops them all. Two rules keep it safe to call from a
process that has live gRPC threads (its own health probes, a test's clients):

* **No fork without exec.** Children are spawned with no ``preexec_fn`` (and no
  ``user``/``group``), so CPython uses ``vfork()``, whose child only runs
  async-signal-safe code before ``execve()``. A ``preexec_fn`` forces ``fork()``,
  which runs gRPC's ``pthread_atfork`` handlers: in the parent, gRPC's prefork
  handler waits for its own threads (the launcher hung there for good, beside
  ``grpc_global_timer`` and ``grpc_shutdown``); in the child, its postfork
  handler restarts gRPC threads whose descriptors CPython's ``close_fds`` step
  then closes before ``execve()``, and gRPC aborts on ``epoll_wait: Bad file
  descriptor`` (the tools "crash" at start-up was that child, dying before it
  ever became phoenix-tools). The death signal the ``preexec_fn`` used to set is
  set by ``setpriv --pdeathsig`` in the exec'd chain instead.
* **No gRPC churn.** Each gRPC component is probed over one channel kept for the
  component's lifetime, not a channel per probe: every close of the last channel
  tears gRPC down on a ``grpc_shutdown`` thread, which is what a fork raced.

A component that exits while starting, or is not healthy within its timeout,
raises ``StackError`` naming it with its log's tail; ``with LocalStack(...)``
and ``make run`` then stop everything they started. What each component is
started with (``.env``, addresses, secrets, the sandbox) is scripts/localenv.py's.
"""

from __future__ import annotations

import contextlib
import http.client
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
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.localenv import base_environment, component_environments, unsandboxed_because

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TWIN = "twin-sentinel"  # the original's tool policy lets this twin run command_exec
ORDER = ("memory", "tools", "orchestrator", "telemetry", "gateway")
READY_TIMEOUT_S = 180.0
STOP_GRACE_S = 10.0
PROBE_INTERVAL_S = 0.2
COMMANDS: dict[str, list[str]] = {
    "memory": [sys.executable, "-m", "phoenix_memory"],
    "tools": [sys.executable, "-m", "phoenix_tools"],
    "orchestrator": [sys.executable, "-m", "phoenix_orchestrator"],
    "telemetry": [sys.executable, "-m", "phoenix_gateway", "telemetry"],
    "gateway": [sys.executable, "-m", "phoenix_gateway"],
}


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
        """Five distinct ports that were free a moment ago (all held until all are chosen)."""
        with contextlib.ExitStack() as held:
            ports = []
            for _ in range(5):
                probe = held.enter_context(socket.socket())
                probe.bind(("127.0.0.1", 0))
                ports.append(int(probe.getsockname()[1]))
        return cls(*ports)


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
    # make run honours ORCHESTRATOR_URL & co. from .env or the environment (to put
    # the original's services in the loop); tests keep the stack's own addresses.
    honour_user_addresses: bool = False
    ready_timeout_s: float = READY_TIMEOUT_S
    ready_timeouts: Mapping[str, float] = field(default_factory=dict)  # per component
    commands: Mapping[str, list[str]] = field(default_factory=lambda: dict(COMMANDS))

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


class StackError(RuntimeError):
    """A component did not start or stopped by itself; the message names it and its log."""


class _GrpcHealth:
    """grpc.health.v1 over one channel kept while the component runs (see module doc)."""

    def __init__(self, port: int) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = health_pb2_grpc.HealthStub(self._channel)

    def __call__(self) -> bool:
        try:
            reply = self._stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def close(self) -> None:
        self._channel.close()


class _HttpHealth:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=1.0) as reply:  # noqa: S310 - loopback
                return bool(reply.status == 200)
        except (urllib.error.URLError, http.client.HTTPException, OSError):
            # HTTPException: something else (e.g. a gRPC server that took the port first)
            # answered; not healthy, and the launcher then sees the component exit.
            return False

    def close(self) -> None:
        pass


def spawn_argv(argv: list[str]) -> list[str]:
    """``argv`` behind ``setpriv --pdeathsig TERM``: it dies with the launcher, no preexec_fn."""
    setpriv = shutil.which("setpriv")
    if sys.platform != "linux" or setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


def spawn(argv: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` as its own process group, output to ``log``; vfork-safe (module doc)."""
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            spawn_argv(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )


class LocalStack:
    """Starts the components as process groups, waits for health, stops them all."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._probes: dict[str, _GrpcHealth | _HttpHealth] = {}
        self._spawned: dict[str, float] = {}  # monotonic time of each component's spawn
        self._envs: dict[str, dict[str, str]] = {}
        self.api_key = ""
        # Set from a signal handler (make run's Ctrl-C) to abandon a start at once.
        self.cancelled = threading.Event()

    @property
    def planner(self) -> str:
        return self._envs["orchestrator"]["LLM_PROVIDER"]

    def environment(self, name: str) -> dict[str, str]:
        return self._envs[name]

    def _probe_for(self, name: str) -> _GrpcHealth | _HttpHealth:
        ports = self.config.ports
        if name in ("memory", "tools"):
            return _GrpcHealth(ports.memory if name == "memory" else ports.tools)
        if name == "orchestrator":
            return _HttpHealth(f"{self.config.orchestrator_url}/health")
        if name == "telemetry":
            return _HttpHealth(f"http://127.0.0.1:{ports.telemetry}/health")
        return _HttpHealth(f"{self.config.gateway_url}/api/health")

    def probe(self, name: str) -> bool:
        """Is the component healthy now? (False if it is not running.)"""
        probe = self._probes.get(name)
        return probe is not None and probe()

    def prepare(self) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        config.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = ensure_api_key(config)
        base = base_environment(config)
        self._envs = component_environments(config, base)
        if (unsandboxed := unsandboxed_because(base)) is not None:
            banner = "!" * 78
            why, fix = unsandboxed
            config.output(
                f"{banner}\nWARNING: {why}: tools run UNSANDBOXED\n"
                "(TOOLS_ALLOW_UNSANDBOXED=true), with only a private working directory.\n"
                f"{fix} for the real sandbox.\n{banner}"
            )

    def start(self, name: str) -> None:
        """Start one component and wait until it is healthy; StackError (with its log) if not."""
        self._spawn(name)
        self._await_healthy([name])

    def start_all(self) -> None:
        """Start every component at once and wait until all are healthy.

        At once, as Kubernetes starts a twin's Pods: no component needs another to be up to
        start (each dials lazily), and their start-ups, mostly imports and model loading,
        overlap instead of adding up. Spawning stays on this one thread."""
        if not self._envs:
            self.prepare()
        for name in ORDER:
            self._spawn(name)
        self._await_healthy(list(ORDER), report=True)

    def _spawn(self, name: str) -> None:
        log_path = self.config.log_dir / f"{name}.log"
        process = spawn(self.config.commands[name], self._envs[name], self.config.cwd, log_path)
        self.processes[name] = process
        self._probes[name] = self._probe_for(name)
        self._spawned[name] = time.monotonic()

    def _await_healthy(self, names: list[str], *, report: bool = False) -> None:
        waiting = list(names)
        while waiting:
            for name in list(waiting):
                log_path = self.config.log_dir / f"{name}.log"
                if (code := peek_exit(self.processes[name])) is not None:
                    raise StackError(
                        f"{name} exited with code {code} while starting; "
                        f"last lines of {log_path}:\n{tail(log_path)}"
                    )
                elapsed = time.monotonic() - self._spawned[name]
                if self._probes[name]():
                    waiting.remove(name)
                    if report:
                        self.config.output(f"  {name:<13} ready ({elapsed:.1f} s)")
                    continue
                timeout = self.config.ready_timeouts.get(name, self.config.ready_timeout_s)
                if elapsed >= timeout:
                    raise StackError(
                        f"{name} was not healthy after {timeout:.0f} s; "
                        f"last lines of {log_path}:\n{tail(log_path)}"
                    )
            if self.cancelled.is_set():
                raise StackError(f"{', '.join(waiting)}: start cancelled")
            if waiting:
                time.sleep(PROBE_INTERVAL_S)

    def stop(self, name: str) -> int | None:
        """SIGTERM the component's process group, SIGKILL after the grace period."""
        probe = self._probes.pop(name, None)
        if probe is not None:
            probe.close()
        process = self.processes.pop(name, None)
        if process is None:
            return None
        # The leader is reaped only after its group is gone: while it is unreaped (alive or a
        # zombie) its pid, which is the group id, cannot be reused, so the SIGKILL for
        # leftovers can never reach a stranger's process group.
        if process.returncode is None:
            if not _await_exit(process, 0):
                _signal_group(process.pid, signal.SIGTERM)
                if not _await_exit(process, STOP_GRACE_S):
                    _signal_group(process.pid, signal.SIGKILL)
                    _await_exit(process, STOP_GRACE_S)
            _signal_group(process.pid, signal.SIGKILL)
        try:
            return process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired as err:
            raise StackError(f"{name} (pid {process.pid}) survived SIGKILL") from err

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
        return {
            name: code for name, p in self.processes.items() if (code := peek_exit(p)) is not None
        }

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


def peek_exit(process: subprocess.Popen[bytes]) -> int | None:
    """The exit code (negative: killed by that signal) if it exited, without reaping it."""
    if process.returncode is not None:
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped by someone else: Popen knows the code
        return process.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _await_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while peek_exit(process) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
