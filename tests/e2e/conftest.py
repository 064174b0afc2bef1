"""The Kubernetes clusters e2e tests run on.

By default a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) with a kwok node is started on 127.0.0.1 for the session and
stopped after it (``NODE=real`` gives it a real node instead). Tests marked
``realnode`` get ``real_cluster``: that same cluster when its node is real,
otherwise a second cluster with a real node (kubelet, containerd, CoreDNS,
NetworkPolicy), started beside it. When KUBECONFIG already points at a
reachable cluster (kind, k3d, a real one), the tests run there instead.

Teardown asserts that nothing of a local cluster is left: no process, and for a
real node no interface, route, mount, cgroup or network namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import localcluster
from localcluster.state import NodeKind
from tests.e2e.kube import KubeCluster, wait_for

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests here e2e and run them after every other test of the session.

    The session's clusters start at the first test that needs one and stop only when
    the session ends: two control planes, a kubelet, containerd and the Pods the tests
    leave terminating. Every test collected after them shared the 2-core machine with
    all of that. Putting the e2e tests last (in their own order) gives the rest an idle
    machine: a warm CI run went from 24:22 to 23:22 with this alone. (The stress tests'
    larger slowdown had another cause: a venv without bytecode, see the Makefile.)
    """
    here = Path(__file__).parent
    on_a_cluster: list[pytest.Item] = []
    elsewhere: list[pytest.Item] = []
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            on_a_cluster.append(item)
        else:
            elsewhere.append(item)
    items[:] = elsewhere + on_a_cluster


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


@contextlib.contextmanager
def _local_cluster(workdir: Path, node: NodeKind) -> Iterator[KubeCluster]:
    state = localcluster.start(workdir, node=node)
    try:
        yield KubeCluster(
            kubeconfig=state.kubeconfig,
            kubectl_path=str(Path(state.bindir) / "kubectl"),
            local=True,
            node=node,
            workdir=str(workdir),
        )
    finally:
        localcluster.stop(workdir)
        leftover = localcluster.leftovers(state)
        assert not leftover, f"the {node}-node cluster left behind: {leftover}"


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    external = _external_kubeconfig()
    if external:
        yield KubeCluster(
            kubeconfig=external, kubectl_path=shutil.which("kubectl") or "kubectl", local=False
        )
        return
    previous = os.environ.get("KUBECONFIG")
    with _local_cluster(tmp_path_factory.mktemp("cluster"), localcluster.node_from_env()) as kube:
        os.environ["KUBECONFIG"] = kube.kubeconfig
        try:
            yield kube
        finally:
            if previous is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = previous


@pytest.fixture(scope="session")
def real_cluster(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    """A cluster whose Pods really run: the session's own if it has a real node, else another."""
    if not kube_cluster.local or kube_cluster.node == "real":
        yield kube_cluster
        return
    with _local_cluster(tmp_path_factory.mktemp("realcluster"), "real") as kube:
        yield kube


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


@pytest.fixture
def real_namespace(real_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace on the real-node cluster, deleted (without waiting) afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    real_cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            real_cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        what=f"ServiceAccount {name}/default",
    )
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
