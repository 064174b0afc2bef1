"""Run phoenix-operator as a real subprocess for e2e tests (so it can be killed with SIGKILL)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from localcluster import free_port
from tests.e2e.kube import KubeCluster, wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "phoenixtwin.io_phoenixtwins.yaml"
OPERATOR = Path(sys.executable).parent / "phoenix-operator"
COMPONENTS = ("gateway", "orchestrator", "memory", "tools")


class OperatorProcess:
    """One phoenix-operator process: start, SIGKILL, restart, read its metrics."""

    def __init__(
        self, kubeconfig: str, workdir: Path, *, namespace: str | None = None, **env: str
    ) -> None:
        """``namespace``: serve only it (``--namespace``), else every one (``--all-namespaces``)."""
        self.kubeconfig = kubeconfig
        self.scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
        self.workdir = workdir
        self.qdrant_path = workdir / "qdrant"
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.extra_env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "operator.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PHOENIX_QDRANT_LOCAL_PATH": str(self.qdrant_path),
            "PHOENIX_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "PHOENIX_OPERATOR_HEALTH_PORT": str(self.health_port),
            "PHOENIX_LOG_FORMAT": "text",
            **self.extra_env,
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(OPERATOR), *self.scope],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        # Importing kopf, lightkube and qdrant-client takes ~10 s on a loaded 2-core machine.
        wait_for(self.healthy, what="phoenix-operator /healthz", timeout=120)

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"phoenix-operator exited; log:\n{self.tail()}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer handling, exactly like an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """Samples of the operator's /metrics, keyed by name{labels}."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def api_writes(self, kind: str | None = None) -> float:
        """Writes the operator sent (all kinds, or one: Deployment, PhoenixTwin/status, ...)."""
        return sum(
            value
            for name, value in self.metrics().items()
            if name.startswith("phoenix_operator_api_writes_total")
            and (kind is None or f'kind="{kind}"' in name)
        )

    def seed_collections(self, namespace: str, names: list[str]) -> None:
        """Create collections as a twin's memory service would on its first commits (no memory
        pod runs on kwok; the operator itself creates none: the memory service owns them)."""
        seed_local_collections(self.qdrant_path / namespace, names)

    def collections(self, namespace: str) -> list[str]:
        """Collections in the test Qdrant (local mode) of ``namespace``; waits for its lock."""
        path = self.qdrant_path / namespace
        if not path.exists():
            return []
        deadline = time.monotonic() + 20
        while True:
            try:
                client = QdrantClient(path=str(path))
            except RuntimeError:  # the operator holds the directory's lock right now
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            try:
                return sorted(c.name for c in client.get_collections().collections)
            finally:
                client.close()


def seed_local_collections(path: Path, names: list[str], dim: int = 384) -> None:
    """Create ``names`` in the local-mode Qdrant at ``path``, waiting for its lock."""
    path.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError:  # the operator holds the directory's lock right now
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        try:
            for name in names:
                if not client.collection_exists(name):
                    client.create_collection(
                        name,
                        vectors_config=models.VectorParams(
                            size=dim, distance=models.Distance.COSINE
                        ),
                    )
            return
        finally:
            client.close()


@contextlib.contextmanager
def running_operator(
    kube: KubeCluster, workdir: Path, *, namespace: str | None = None, **env: str
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(kube.kubeconfig, workdir, namespace=namespace, **env)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def install_crd(kube: KubeCluster) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube.wait_established("phoenixtwins.phoenixtwin.io")
    wait_for(
        lambda: kube.kubectl("get", "ptwin", "-A", check=False).returncode == 0,
        what="the PhoenixTwin API to be served",
    )


def twin(
    name: str, namespace: str, spec: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "phoenixtwin.io/v1alpha1",
        "kind": "PhoenixTwin",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": spec or {},
    }


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def get_or_none(kube: KubeCluster, *args: str) -> Any:
    result = kube.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def ready_at_generation(kube: KubeCluster, namespace: str, name: str) -> Callable[[], bool]:
    """A check: the twin's Ready is True and its status describes its current generation."""

    def check() -> bool:
        body = get_or_none(kube, "ptwin", name, "-n", namespace)
        if body is None:
            return False
        ready = condition(body, "Ready")
        return (
            ready.get("status") == "True"
            and body["status"].get("observedGeneration") == body["metadata"]["generation"]
            and ready.get("observedGeneration") == body["metadata"]["generation"]
        )

    return check
