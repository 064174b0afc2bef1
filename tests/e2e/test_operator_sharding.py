"""Two phoenix-operator replicas dividing the twins by label selector: each serves its shard only.

kopf peering is active/standby (one replica works at a time), so it adds availability but
no capacity. Capacity comes from shards: replica A runs with
``PHOENIX_OPERATOR_TWIN_SELECTOR=phoenixtwin.io/shard=a``, replica B with ``=b``; the API
server filters each replica's twin watch, so neither ever sees the other's twins.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import (
    OperatorProcess,
    get_or_none,
    install_crd,
    ready_at_generation,
    twin,
)

RESYNC_SECONDS = 2


@pytest.fixture
def shards(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, OperatorProcess]]:
    install_crd(kube_cluster)
    processes = {
        shard: OperatorProcess(
            kube_cluster.kubeconfig,
            tmp_path_factory.mktemp(f"operator-{shard}"),
            PHOENIX_OPERATOR_TWIN_SELECTOR=f"phoenixtwin.io/shard={shard}",
            PHOENIX_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
        )
        for shard in ("a", "b")
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            process.stop()


def served(operator: OperatorProcess) -> float:
    """Twins this process keeps state for (phoenix_operator_twins, summed over phases)."""
    return sum(
        value
        for name, value in operator.metrics().items()
        if name.startswith("phoenix_operator_twins{")
    )


def resyncs(operator: OperatorProcess) -> float:
    return sum(
        value
        for name, value in operator.metrics().items()
        if name.startswith("phoenix_operator_reconciles_total") and 'trigger="resync"' in name
    )


def test_two_replicas_each_reconcile_only_the_twins_of_their_shard(
    kube_cluster: KubeCluster, namespace: str, shards: dict[str, OperatorProcess]
) -> None:
    for process in shards.values():
        process.start()
    labels = {"a": ["a1", "a2"], "b": ["b1"]}
    kube_cluster.apply(
        *(
            twin(name, namespace, labels={"phoenixtwin.io/shard": shard})
            for shard, names in labels.items()
            for name in names
        )
    )
    for names in labels.values():
        for name in names:
            wait_for(
                ready_at_generation(kube_cluster, namespace, name),
                what=f"{name} Ready",
                timeout=90,
            )
    assert served(shards["a"]) == 2
    assert served(shards["b"]) == 1

    # Replica B down: its twin's deleted child stays deleted through A's resyncs...
    shards["b"].stop()
    kube_cluster.kubectl("delete", "deployment", "b1-tools", "-n", namespace)
    before = resyncs(shards["a"])
    wait_for(
        lambda: resyncs(shards["a"]) >= before + 2 * len(labels["a"]),
        what="two resyncs of shard a",
        timeout=RESYNC_SECONDS * 20,
    )
    assert get_or_none(kube_cluster, "deployment", "b1-tools", "-n", namespace) is None
    assert get_or_none(kube_cluster, "deployment", "a1-tools", "-n", namespace) is not None

    # ...and comes back as soon as B serves its shard again.
    shards["b"].start()
    wait_for(
        lambda: get_or_none(kube_cluster, "deployment", "b1-tools", "-n", namespace) is not None,
        what="b1-tools restored by replica b",
        timeout=60,
    )
    assert served(shards["a"]) == 2
