"""Smoke tests on a real node: our images run, and the cluster's plumbing works for them.

Every Pod here really runs (kubelet, containerd, runc); kubectl logs/exec/port-forward go
through the API server to the kubelet; Service names resolve through CoreDNS; NetworkPolicy is
enforced by kube-router. See localcluster/ and docs/control-plane.md.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import localcluster
from localcluster import images, node
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.realnode import (
    PORTS,
    component_pod,
    connect_code,
    exec_in,
    gateway_keys,
    port_forward,
    python_in,
    wait_ready,
)

pytestmark = pytest.mark.realnode
CRD = Path(__file__).resolve().parents[2] / "crds" / "phoenixtwin.io_phoenixtwins.yaml"


@pytest.fixture(scope="module")
def loaded(real_cluster: KubeCluster) -> KubeCluster:
    """The real cluster with our five images imported into its node's containerd."""
    if real_cluster.local:
        assert real_cluster.workdir is not None
        state = localcluster.ClusterState.load(Path(real_cluster.workdir))
        assert state is not None
        started = time.monotonic()
        images.load(state, list(images.COMPONENTS))
        print(f"images built or cached and imported in {time.monotonic() - started:.1f}s")
    return real_cluster


@pytest.fixture(scope="module")
def smoke_namespace(loaded: KubeCluster) -> Iterator[str]:
    name = f"smoke-{int(time.time())}"
    loaded.kubectl("create", "namespace", name)
    wait_for(
        lambda: loaded.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        what=f"ServiceAccount {name}/default",
    )
    yield name
    loaded.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_imported_images_are_pinned_against_the_kubelets_image_deletion(
    loaded: KubeCluster,
) -> None:
    """Imported images cannot be pulled again, and the kubelet deletes unused images whenever
    the (shared) disk runs short: a CI run lost every twin image that way between import and
    first use. containerd reports a labelled image as pinned, and the kubelet keeps those."""
    if not loaded.local:
        pytest.skip("an external cluster's images are loaded (and kept) by whoever made it")
    assert loaded.workdir is not None
    state = localcluster.ClusterState.load(Path(loaded.workdir))
    assert state is not None
    assert state.node_bindir is not None
    pinned = node.pinned_images(state, Path(state.node_bindir))
    wanted = {images.image_name(component) for component in images.COMPONENTS}
    assert wanted <= pinned, f"not pinned: {sorted(wanted - pinned)}"


@pytest.mark.parametrize("component", images.COMPONENTS)
def test_a_pod_of_each_image_becomes_ready_through_its_probe(
    loaded: KubeCluster, smoke_namespace: str, component: str
) -> None:
    if component == "operator":
        loaded.kubectl("apply", "--server-side", "-f", str(CRD))
        loaded.kubectl("create", "serviceaccount", "operator", "-n", smoke_namespace)
        loaded.kubectl(
            "create", "clusterrolebinding", f"{smoke_namespace}-operator",
            "--clusterrole=cluster-admin", f"--serviceaccount={smoke_namespace}:operator",
        )  # fmt: skip
    if component == "gateway":
        loaded.apply(gateway_keys(smoke_namespace))
    loaded.apply(component_pod(component, smoke_namespace))
    seconds = wait_ready(loaded, smoke_namespace, component)
    print(f"{component}: kubectl apply -> Ready in {seconds:.1f}s")
    pod = loaded.get("pod", component, "-n", smoke_namespace)
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["restartCount"] == 0, f"{component} restarted: {status}"
    assert status["imageID"], "the kubelet reports no image: the container did not run"


def test_logs_exec_and_port_forward_reach_a_running_pod(
    loaded: KubeCluster, smoke_namespace: str
) -> None:
    wait_ready(loaded, smoke_namespace, "orchestrator")
    logs = loaded.kubectl("logs", "-n", smoke_namespace, "orchestrator").stdout
    assert logs.strip(), "kubectl logs returned nothing"
    whoami = exec_in(loaded, smoke_namespace, "orchestrator", "id", "-u")
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == "10001"
    target = ("pod/orchestrator", PORTS["orchestrator"])
    with (
        port_forward(loaded, smoke_namespace, *target) as port,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp,
    ):
        assert resp.status == 200
        body = json.load(resp)
    assert body, "the orchestrator's /health answered an empty body"


def test_a_service_name_resolves_through_coredns_and_connects(
    loaded: KubeCluster, smoke_namespace: str
) -> None:
    wait_ready(loaded, smoke_namespace, "gateway")
    wait_ready(loaded, smoke_namespace, "orchestrator")
    loaded.kubectl("expose", "pod", "gateway", "-n", smoke_namespace, "--port=8181")
    ip = loaded.get("service", "gateway", "-n", smoke_namespace)["spec"]["clusterIP"]
    fqdn = f"gateway.{smoke_namespace}.svc.cluster.local"
    resolved = python_in(
        loaded,
        smoke_namespace,
        "orchestrator",
        f"import socket; print(socket.gethostbyname({fqdn!r}))",
    )
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip() == ip
    # kube-proxy programs a new Service asynchronously (until then the node has no route to
    # its ClusterIP: "Network is unreachable"), so connecting is awaited, not tried once.
    code = connect_code("gateway", 8181)
    wait_for(
        lambda: python_in(loaded, smoke_namespace, "orchestrator", code).returncode == 0,
        what="a connection to the Service by its short name",
        timeout=60,
        interval=1,
    )


def test_a_default_deny_policy_blocks_a_connection_that_worked(
    loaded: KubeCluster, smoke_namespace: str
) -> None:
    wait_ready(loaded, smoke_namespace, "gateway")
    wait_ready(loaded, smoke_namespace, "memory")
    target = loaded.get("pod", "gateway", "-n", smoke_namespace)["status"]["podIP"]
    code = connect_code(target, 8181, timeout=2)
    before = python_in(loaded, smoke_namespace, "memory", code)
    assert before.returncode == 0, f"no connection even without a policy: {before.stdout}"
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": smoke_namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    loaded.apply(deny)
    try:
        wait_for(
            lambda: python_in(loaded, smoke_namespace, "memory", code).returncode != 0,
            what="kube-router to enforce the default-deny policy",
            timeout=60,
            interval=1,
        )
        # Still blocked a moment later: enforced, not a transient failure.
        time.sleep(3)
        assert python_in(loaded, smoke_namespace, "memory", code).returncode != 0
    finally:
        loaded.kubectl("delete", "networkpolicy", "default-deny", "-n", smoke_namespace)
    wait_for(
        lambda: python_in(loaded, smoke_namespace, "memory", code).returncode == 0,
        what="the connection to work again once the policy is gone",
        timeout=60,
        interval=1,
    )


def test_a_grpc_probe_answers_through_port_forward(
    loaded: KubeCluster, smoke_namespace: str
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    wait_ready(loaded, smoke_namespace, "memory")
    with (
        port_forward(loaded, smoke_namespace, "pod/memory", PORTS["memory"]) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_claim_of_the_default_class_is_writable_by_the_non_root_pod_and_reclaimed(
    loaded: KubeCluster, smoke_namespace: str
) -> None:
    """What a twin's orchestrator StatefulSet needs: its claim bound and writable as 10001."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "state", "namespace": smoke_namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    pod = component_pod("orchestrator", smoke_namespace)
    pod["metadata"]["name"] = "claimant"
    pod["spec"]["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    pod["spec"]["volumes"].append(
        {"name": "state", "persistentVolumeClaim": {"claimName": "state"}}
    )
    (container,) = pod["spec"]["containers"]
    container["volumeMounts"].append({"name": "state", "mountPath": "/var/lib/phoenix"})
    loaded.apply(claim, pod)
    wait_ready(loaded, smoke_namespace, "claimant")
    bound = loaded.get("pvc", "state", "-n", smoke_namespace)
    assert bound["spec"]["storageClassName"] == "standard"  # the default class, not asked for
    volume = bound["spec"]["volumeName"]
    wrote = exec_in(
        loaded, smoke_namespace, "claimant", "sh", "-c",
        "echo kept > /var/lib/phoenix/probe && cat /var/lib/phoenix/probe && id -u",
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.split() == ["kept", "10001"]
    local_path = Path(loaded.get("pv", volume)["spec"]["local"]["path"])
    assert (local_path / "probe").read_text() == "kept\n"
    loaded.kubectl("delete", "pod", "claimant", "-n", smoke_namespace, "--wait=true")
    loaded.kubectl("delete", "pvc", "state", "-n", smoke_namespace, "--wait=true")
    wait_for(
        lambda: loaded.kubectl("get", "pv", volume, check=False).returncode != 0,
        what=f"the released volume {volume} to be deleted",
    )
    assert not local_path.exists(), f"{local_path} outlived its volume"
