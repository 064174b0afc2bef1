"""Helpers e2e tests use to drive a cluster: kubectl with the right kubeconfig, and polling."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KubeCluster:
    """A cluster the tests may use: its kubeconfig and the kubectl to drive it with."""

    kubeconfig: str
    kubectl_path: str
    local: bool
    # "kwok" (Pods run on paper only) or "real" (a kubelet runs them); external clusters: real.
    node: str = "real"
    # The local cluster's workdir (state.json, logs); None for an external cluster.
    workdir: str | None = None

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Until the CRD's Established condition is True.

        Not `kubectl wait --for=condition=Established`: on a CRD the API server has not yet
        given a status, it fails at once ("<nil> is of the type <nil>") instead of waiting."""

        def established() -> bool:
            found = self.kubectl("get", "crd", crd, "-o", "json", check=False)
            if found.returncode != 0:
                return False
            conditions = (json.loads(found.stdout).get("status") or {}).get("conditions") or []
            return any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            )

        wait_for(established, timeout=timeout, what=f"CRD {crd} to be Established")

    def apply(self, *objects: dict[str, Any], server_side: bool = True) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        flags = ["--server-side", "--force-conflicts"] if server_side else []
        self.kubectl("apply", *flags, "-f", "-", stdin=body)


def wait_for(
    check: Callable[[], bool], *, what: str, timeout: float = 60, interval: float = 0.25
) -> None:
    """Poll ``check`` until it is true, failing the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def deployment(name: str, namespace: str, replicas: int = 2) -> dict[str, Any]:
    """A minimal Deployment whose Pods kwok runs on paper (the image is never pulled)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }
