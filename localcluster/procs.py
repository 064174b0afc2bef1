"""Processes of the cluster: start in their own session, wait for readiness, stop by group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says which part and where its log is."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn(
    name: str, argv: list[str], logdir: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output in ``logdir/<name>.log``.

    Own session: ``stop_group`` kills the whole group, and a Ctrl-C in the terminal that ran
    ``make cluster-up`` does not reach it.
    """
    with (logdir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=None if env is None else {**os.environ, **env},
        )


def wait(
    what: str,
    check: Callable[[], object],
    timeout: float,
    procs: Mapping[str, subprocess.Popen[bytes]],
    logdir: Path,
) -> None:
    """Poll ``check`` until truthy; fail early, naming the log, if a watched process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ClusterError(
                    f"{name} exited with code {proc.returncode} while waiting for {what}; "
                    f"see {logdir / (name + '.log')}"
                )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {logdir}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.create_connection((host, port), timeout=1):
        return True


def client_ssl(pki: Path) -> ssl.SSLContext:
    """TLS context of the admin user: trusts the cluster CA, presents the admin client cert."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def https_ok(url: str, pki: Path | None) -> bool:
    # KCM and the scheduler serve self-signed certs of their own: only liveness is checked there.
    ctx = ssl._create_unverified_context() if pki is None else client_ssl(pki)
    with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
        return bool(resp.status == 200)


def kubectl(
    bindir: Path, kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 60
) -> str:
    result = subprocess.run(
        [str(bindir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_group(pid: int, timeout: float) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL after ``timeout``; True if killed."""
    if not alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)
    return True
