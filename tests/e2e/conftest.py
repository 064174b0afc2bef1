"""The Kubernetes cluster every e2e test runs on.

By default a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok) is started on 127.0.0.1 for the session and stopped after
it. When KUBECONFIG already points at a reachable cluster (kind, k3d, a real
one), the same tests run there instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import localcluster
from tests.e2e.kube import KubeCluster, wait_for

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def _external_kubeconfig() -> str | None:
    path = os.environ.get("KUBECONFIG")
    if not path or os.environ.get("PHOENIX_E2E_LOCAL_CLUSTER") == "1":
        return None
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    probe = subprocess.run(
        [kubectl, f"--kubeconfig={path}", "get", "--raw=/readyz"],
        capture_output=True,
        text=True,
        check=False,
        timeout=15,
    )
    return path if probe.returncode == 0 else None


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    external = _external_kubeconfig()
    if external:
        yield KubeCluster(
            kubeconfig=external, kubectl_path=shutil.which("kubectl") or "kubectl", local=False
        )
        return
    workdir = tmp_path_factory.mktemp("cluster")
    state = localcluster.start(workdir)
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = state.kubeconfig
    try:
        yield KubeCluster(
            kubeconfig=state.kubeconfig,
            kubectl_path=str(Path(state.bindir) / "kubectl"),
            local=True,
        )
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        localcluster.stop(workdir)
        leftover = [name for name, pid in state.pids.items() if localcluster._alive(pid)]
        assert not leftover, f"control-plane processes left running: {leftover}"


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount, which KCM creates asynchronously.
    wait_for(
        lambda: (
            kube_cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        what=f"ServiceAccount {name}/default",
    )
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
