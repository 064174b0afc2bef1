"""phoenix-operator killed with SIGKILL mid-reconcile and restarted: it converges, leaves no
orphans and no stuck finalizer; a restart over converged twins writes nothing at all, and a
restart after one Deployment was deleted writes that Deployment and nothing else but status."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcluster.procs import free_port
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import (
    OperatorProcess,
    condition,
    get_or_none,
    install_crd,
    ready_at_generation,
    twin,
)
from tests.memory.qdrant_server import qdrant_endpoint

RESYNC_SECONDS = 2
# SA, 2 Secrets, 5 ConfigMaps, 5 NetworkPolicies, 4 Services, 3 Deployments, 1 StatefulSet
CHILDREN_PER_TWIN = 21
KINDS = "serviceaccounts,configmaps,secrets,services,deployments,statefulsets,networkpolicies,pdb"


# These tests count an operator's reconciles and writes, so each operator serves only its
# test's namespace: the cluster is shared, and other tests' twins (their namespaces deleted
# without waiting, some still terminating) would count too. A restart over 8 such twins once
# made a one-twin test read 9 resumes.


@pytest.fixture
def operator(
    kube_cluster: KubeCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install_crd(kube_cluster)
    process = OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path_factory.mktemp("operator"),
        namespace=namespace,
        PHOENIX_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
    )
    try:
        yield process
    finally:
        process.stop()


def twins(kube: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    return list(kube.get("ptwin", "-n", namespace)["items"])


def children(kube: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    return list(kube.get(KINDS, "-n", namespace, "-l", "phoenixtwin.io/twin")["items"])


def all_ready(kube: KubeCluster, namespace: str, names: list[str]) -> bool:
    return all(ready_at_generation(kube, namespace, name)() for name in names)


def reconciles(operator: OperatorProcess, trigger: str, result: str | None = None) -> float:
    """Reconciles this process finished for ``trigger`` (resume, resync, child, ...), with
    ``result`` (ok, degraded, error) when given."""
    return sum(
        value
        for name, value in operator.metrics().items()
        if name.startswith("phoenix_operator_reconciles_total")
        and f'trigger="{trigger}"' in name
        and (result is None or f'result="{result}"' in name)
    )


def written(operator: OperatorProcess) -> dict[str, float]:
    return {
        name: value
        for name, value in operator.metrics().items()
        if name.startswith("phoenix_operator_api_writes_total") and value
    }


def children_written(operator: OperatorProcess) -> dict[str, float]:
    """Writes of children (twin status and events excluded: they follow a rollout)."""
    return {
        name: value
        for name, value in written(operator).items()
        if 'kind="PhoenixTwin/status"' not in name and 'kind="Event"' not in name
    }


def test_killed_operator_converges_after_restart_without_orphans_or_stuck_finalizers(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    names = [f"twin-{i}" for i in range(6)]
    specs: list[dict[str, Any]] = [
        {"memory": {"reclaimPolicy": "Delete" if i % 2 else "Retain"}} for i in range(6)
    ]
    operator.start()
    kube_cluster.apply(*(twin(n, namespace, s) for n, s in zip(names, specs, strict=True)))
    wait_for(
        lambda: len(children(kube_cluster, namespace)) > 0,
        what="the operator to start creating children",
        timeout=30,
    )
    operator.kill()  # mid-reconcile: some twins have some children
    partial = len(children(kube_cluster, namespace))

    # While it is down: a spec change and a deleted child.
    kube_cluster.kubectl(
        "patch", "ptwin", names[0], "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"memory": {"replicas": 2}}}),
    )  # fmt: skip
    operator.start()
    wait_for(
        lambda: all_ready(kube_cluster, namespace, names),
        what="every twin Ready after the restart",
        timeout=90,
    )
    found = children(kube_cluster, namespace)
    assert partial <= len(found)
    uids = {t["metadata"]["uid"]: t["metadata"]["name"] for t in twins(kube_cluster, namespace)}
    per_twin: dict[str, int] = {}
    for child in found:
        owners = [o for o in child["metadata"]["ownerReferences"] if o.get("controller")]
        assert len(owners) == 1, child["metadata"]["name"]
        assert owners[0]["uid"] in uids, f"orphan {child['kind']} {child['metadata']['name']}"
        per_twin[uids[owners[0]["uid"]]] = per_twin.get(uids[owners[0]["uid"]], 0) + 1
    expected = dict.fromkeys(names, CHILDREN_PER_TWIN)
    expected[names[0]] += 1  # the PodDisruptionBudget of two memory replicas
    assert per_twin == expected

    # A restart over converged twins writes nothing: every twin is checked (its resume
    # reconcile, against kopf's fully listed indices) and then resynced, without a write.
    wait_for(lambda: quiet_status(kube_cluster, namespace), what="statuses settled", timeout=60)
    operator.kill()
    operator.start()
    wait_for(
        lambda: reconciles(operator, "resume") >= len(names),
        what="every twin checked after the restart",
        timeout=60,
    )
    resyncs = reconciles(operator, "resync")
    wait_for(
        lambda: reconciles(operator, "resync") >= resyncs + len(names),
        what="a resync of every twin",
        timeout=RESYNC_SECONDS * 20,
    )
    assert written(operator) == {}
    assert operator.api_writes() == 0
    assert len(children(kube_cluster, namespace)) == len(found)

    # Deleted while the operator is down: after the restart, that Deployment is the only
    # child written (a ChildRestored event says so; status and events follow its rollout).
    operator.kill()
    kube_cluster.kubectl("delete", "deployment", f"{names[1]}-tools", "-n", namespace)
    operator.start()
    wait_for(
        lambda: (
            all_ready(kube_cluster, namespace, names)
            and len(children(kube_cluster, namespace)) == len(found)
        ),
        what="the deleted Deployment restored after the restart",
        timeout=60,
    )
    assert children_written(operator) == {
        'phoenix_operator_api_writes_total{kind="Deployment",verb="apply"}': 1.0
    }, written(operator)
    events = kube_cluster.get(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={names[1]}"
    )["items"]
    assert [e["message"] for e in events if e["reason"] == "ChildRestored"] == [
        f"Restored Deployment {names[1]}-tools."
    ]

    # Killed again, then every twin deleted: nothing stays stuck on a finalizer.
    operator.kill()
    # The collections the memory services would have created, for reclaim to act on.
    operator.seed_collections(namespace, [f"phx.{namespace}.{n}.default" for n in names])
    operator.start()
    kube_cluster.kubectl("delete", "ptwin", "--all", "-n", namespace, "--wait=false")
    wait_for(
        lambda: not twins(kube_cluster, namespace),
        what="every twin deleted (finalizers released)",
        timeout=60,
    )
    wait_for(
        lambda: not children(kube_cluster, namespace),
        what="every child garbage-collected",
        timeout=60,
    )
    assert operator.collections(namespace) == sorted(
        f"phx.{namespace}.{n}.default" for n, s in zip(names, specs, strict=True)
        if s["memory"]["reclaimPolicy"] == "Retain"
    )  # fmt: skip


def test_a_twin_whose_qdrant_is_down_at_restart_is_retried_until_it_answers(
    kube_cluster: KubeCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The twin handlers only queue their twin, so the queue itself must retry a failed
    reconcile: with resync an hour away, nothing else would ever look at the twin again."""
    install_crd(kube_cluster)
    operator = OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path_factory.mktemp("operator"),
        namespace=namespace,
        PHOENIX_OPERATOR_RESYNC_SECONDS="3600",
        PHOENIX_OPERATOR_QDRANT_RETRY_SECONDS="3",  # retries after 0.5, 1, 2, 4, ... s
    )
    try:
        qdrant_down_at_restart(kube_cluster, namespace, operator, timeout=90)
    finally:
        operator.stop()


def qdrant_down_at_restart(
    kube: KubeCluster, namespace: str, operator: OperatorProcess, *, timeout: float
) -> None:
    """A Ready twin on a real Qdrant; the operator killed, Qdrant stopped, the operator
    started: Degraded, retried with growing delays, Ready again once Qdrant answers.

    A twin in another namespace is there all along, as other tests' twins may be: the
    operator serves only ``namespace``, so the exact counts below are ivy's alone."""
    port = free_port()
    spec = {"memory": {"qdrant": {"url": f"http://127.0.0.1:{port}"}}}
    ready = ready_at_generation(kube, namespace, "ivy")
    elsewhere = f"{namespace}-elsewhere"
    kube.kubectl("create", "namespace", elsewhere)
    try:
        kube.apply(twin("decoy", elsewhere))
        with qdrant_endpoint(grpc_port=port):
            operator.start()
            kube.apply(twin("ivy", namespace, spec))
            wait_for(ready, what="ivy Ready", timeout=timeout)
            operator.kill()
        operator.start()  # Qdrant is gone now
        _recovers_through_retries(kube, namespace, operator, port, ready, timeout=timeout)
    finally:
        kube.kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)


def _recovers_through_retries(
    kube: KubeCluster,
    namespace: str,
    operator: OperatorProcess,
    port: int,
    ready: Callable[[], bool],
    *,
    timeout: float,
) -> None:
    wait_for(
        lambda: degraded_reason(kube, namespace, "ivy") == "QdrantUnreachable",
        what="Degraded=QdrantUnreachable after the restart",
        timeout=timeout,
    )
    assert reconciles(operator, "resume") == 1
    wait_for(lambda: reconciles(operator, "retry") >= 2, what="two retries", timeout=timeout)
    with qdrant_endpoint(grpc_port=port):
        wait_for(ready, what="ivy Ready again, through a retry", timeout=timeout)
        # Its status is written before the reconcile is counted: wait for the count.
        wait_for(
            lambda: reconciles(operator, "retry", result="ok") == 1,
            what="the successful retry counted",
            timeout=timeout,
        )
        assert degraded_reason(kube, namespace, "ivy") == "AsExpected"
        retries = reconciles(operator, "retry")
        assert reconciles(operator, "resync") == 0  # nothing but the queue's retries
        # Growing delays, never a hot loop: 12 retries would take over 15 minutes down.
        assert 2 <= retries <= 12, retries
        time.sleep(3)  # once it succeeded, nothing more is scheduled
        assert reconciles(operator, "retry") == retries


def degraded_reason(kube: KubeCluster, namespace: str, name: str) -> str | None:
    body = get_or_none(kube, "ptwin", name, "-n", namespace)
    return condition(body, "Degraded").get("reason") if body else None


def quiet_status(kube: KubeCluster, namespace: str) -> bool:
    """Every twin's status describes fully rolled-out Deployments (nothing left to report)."""
    return all(
        t.get("status", {}).get("componentsReady") == "4/4" and t["status"].get("phase") == "Ready"
        for t in twins(kube, namespace)
    )
