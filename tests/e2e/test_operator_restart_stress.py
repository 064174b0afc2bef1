"""Operator restarts over converged twins under build-like load: every twin is checked
against kopf's fully listed indices, and each restart writes exactly what changed while
the operator was down, nothing else.

Under load the restart's timing is what changes: kopf's initial lists arrive more slowly
and out of step between kinds, listed children pass the index barrier without waiting
(kopf_barrier) while the twins wait for it, and object workers end after
``PHOENIX_OPERATOR_WORKER_IDLE_SECONDS`` and are made again on the next event. A twin
compared against a partial index would re-apply children it already has.

Also under load: a restart while a twin's Qdrant is down, which only the reconcile
queue's own retry timers bring back to Ready (the twin handlers do not wait or retry).
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import OperatorProcess, install_crd, running_operator, twin
from tests.e2e.test_operator_restart import (
    CHILDREN_PER_TWIN,
    all_ready,
    children,
    children_written,
    qdrant_down_at_restart,
    quiet_status,
    reconciles,
    written,
)
from tests.stress.load import BuildLoad

pytestmark = [pytest.mark.stress, pytest.mark.timeout(1200)]
TWINS = int(os.environ.get("PHOENIX_STRESS_RESTART_TWINS", "8"))
RESTARTS = int(os.environ.get("PHOENIX_STRESS_RESTARTS", "3"))
RESYNC_SECONDS = 2
LOADED_TIMEOUT_S = 180


def test_restarts_under_load_write_only_what_changed_while_down(
    kube_cluster: KubeCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    install_crd(kube_cluster)
    with running_operator(
        kube_cluster,
        tmp_path_factory.mktemp("operator"),
        namespace=namespace,  # it counts writes: test_operator_restart's note
        PHOENIX_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
    ) as operator:
        _restart_under_load(kube_cluster, namespace, operator)


def test_a_twin_whose_qdrant_is_down_at_restart_is_retried_under_load(
    kube_cluster: KubeCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The queue's retry timers under load: the twin still recovers through them alone."""
    install_crd(kube_cluster)
    operator = OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path_factory.mktemp("operator"),
        namespace=namespace,  # it counts resumes: test_operator_restart's note
        PHOENIX_OPERATOR_RESYNC_SECONDS="3600",
        PHOENIX_OPERATOR_QDRANT_RETRY_SECONDS="3",
    )
    try:
        with BuildLoad():
            qdrant_down_at_restart(kube_cluster, namespace, operator, timeout=LOADED_TIMEOUT_S)
    finally:
        operator.stop()


def _restart_under_load(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    names = [f"twin-{i}" for i in range(TWINS)]
    kube_cluster.apply(*(twin(name, namespace) for name in names))
    wait_for(
        lambda: all_ready(kube_cluster, namespace, names) and quiet_status(kube_cluster, namespace),
        what="every twin Ready and its status settled",
        timeout=LOADED_TIMEOUT_S,
    )
    expected_children = len(names) * CHILDREN_PER_TWIN
    assert len(children(kube_cluster, namespace)) == expected_children

    with BuildLoad():
        for restart in range(RESTARTS):
            operator.kill()
            # Every restart but the first finds one Deployment deleted while it was down.
            deleted = names[restart % len(names)] if restart else None
            if deleted is not None:
                kube_cluster.kubectl("delete", "deployment", f"{deleted}-tools", "-n", namespace)
            operator.start()
            wait_for(
                lambda: reconciles(operator, "resume") >= len(names),
                what=f"restart {restart}: every twin checked",
                timeout=LOADED_TIMEOUT_S,
            )
            wait_for(
                lambda: (
                    len(children(kube_cluster, namespace)) == expected_children
                    and all_ready(kube_cluster, namespace, names)
                ),
                what=f"restart {restart}: every child there and every twin Ready",
                timeout=LOADED_TIMEOUT_S,
            )
            resyncs = reconciles(operator, "resync")
            wait_for(
                lambda: reconciles(operator, "resync") >= resyncs + len(names),  # noqa: B023 - waited for in this iteration
                what=f"restart {restart}: a resync of every twin",
                timeout=LOADED_TIMEOUT_S,
            )
            if deleted is None:
                assert written(operator) == {}, f"restart {restart}"
                assert operator.api_writes() == 0, f"restart {restart}"
            else:
                assert children_written(operator) == {
                    'phoenix_operator_api_writes_total{kind="Deployment",verb="apply"}': 1.0
                }, f"restart {restart}: {written(operator)}"
            wait_for(
                lambda: quiet_status(kube_cluster, namespace),
                what=f"restart {restart}: statuses settled",
                timeout=LOADED_TIMEOUT_S,
            )
