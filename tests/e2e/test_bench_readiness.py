"""bench.readiness on the real API server: the operator bench's watch-kept count of ready
objects agrees with what the API lists, as objects become ready and go away."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from bench.readiness import Readiness, available
from tests.e2e.kube import KubeCluster, deployment, wait_for


def listed_available(kube: KubeCluster, namespace: str) -> int:
    return sum(available(d) for d in kube.get("deployments", "-n", namespace)["items"])


def test_the_count_follows_the_api_without_polling_it(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube_cluster.apply(deployment("before", namespace, 1))  # exists before the watch starts
    wait_for(lambda: listed_available(kube_cluster, namespace) == 1, what="before available")
    other = Readiness(kube_cluster.kubeconfig, ("apps", "v1", "Deployment", "deployments"),
                      ["elsewhere"], available)  # fmt: skip
    watched = Readiness(kube_cluster.kubeconfig, ("apps", "v1", "Deployment", "deployments"),
                        [namespace], available)  # fmt: skip
    try:
        _follow_changes(kube_cluster, namespace, watched, other)
    finally:
        watched.stop()
        other.stop()


def _follow_changes(
    kube_cluster: KubeCluster, namespace: str, watched: Readiness, other: Readiness
) -> None:
    wait_for(lambda: watched.count() == 1, what="the existing Deployment counted")

    kube_cluster.apply(deployment("a", namespace, 2), deployment("b", namespace, 1))
    wait_for(lambda: watched.count() == 3, what="three Deployments counted available")
    assert listed_available(kube_cluster, namespace) == 3

    kube_cluster.apply(deployment("unschedulable", namespace, 1) | {
        "spec": deployment("unschedulable", namespace, 1)["spec"] | {
            "template": {
                "metadata": {"labels": {"app": "unschedulable"}},
                "spec": {
                    "nodeSelector": {"no-such-node": "true"},
                    "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                },
            }
        }
    })  # fmt: skip
    kube_cluster.kubectl("delete", "deployment", "b", "-n", namespace, "--wait=true")
    wait_for(lambda: watched.count() == 2, what="the deleted Deployment uncounted")
    assert listed_available(kube_cluster, namespace) == 2  # the unschedulable one is not
    assert other.count() == 0  # another namespace's watch saw none of them


def test_an_unreachable_api_server_neither_ends_the_watch_nor_keeps_it_after_stop(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "gone", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }))  # fmt: skip
    watch = Readiness(str(kubeconfig), ("apps", "v1", "Deployment", "deployments"),
                      ["any"], available)  # fmt: skip
    time.sleep(2.5)  # several refused connections
    assert watch._thread.is_alive()
    assert watch.count() == 0
    watch.stop()
    watch._thread.join(timeout=10)
    assert not watch._thread.is_alive()
