"""Whole twins on the real node: `kubectl apply` -> Ready for one twin, and for 10 at once.

A real-node cluster of its own (localcluster), our images and the Qdrant server's loaded into
its containerd, a Qdrant server Pod where the chart's default points, and the chart installed
with our operator image (`helm install --wait`), as in tests/e2e/test_twin_realnode.py. Then
examples/minimal.yaml (with smaller CPU requests, see SMALL_TWIN) in one namespace, alone; then
in 10 namespaces applied back to back without waiting. A twin's time runs from its own `kubectl
apply` to the first poll that sees its Ready condition True at its generation (four Pods Ready
through their real probes); the batch's from the first apply to the last Ready. The baseline of
the 10 is the lone twin, so the ratios say what sharing one node (2 cores here) and one
operator costs. Last, the RSS of the node's Pods once all 11 twins are Ready, from the
kubelet's summary API.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import localcluster
from bench.report import Figure
from localcluster import images
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.twin_cluster import (
    QDRANT_NAMESPACE,
    Release,
    create_namespace,
    pod_memory,
    pss,
    qdrant_objects,
    rollout,
)

# examples/minimal.yaml with smaller CPU requests. The node has 2 CPUs, and at the default
# 50m per container (the telemetry sidecar's is 10m) the scheduler places only 8 of the 11
# twins: the rest stay Pending with "Insufficient cpu". Requests only: no CPU limit either way.
SMALL_REQUESTS = {"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
SMALL_TWIN = {
    "apiVersion": "phoenixtwin.io/v1alpha1",
    "kind": "PhoenixTwin",
    "metadata": {"name": "minimal"},
    "spec": {
        component: {"resources": SMALL_REQUESTS}
        for component in ("gateway", "orchestrator", "memory", "tools")
    },
}
TWIN = "minimal"
BATCH = 10
TIMEOUT_S = 1800.0
Key = tuple[str, str]  # (namespace, twin)


def _ready_twins(kube: KubeCluster) -> set[Key]:
    """Twins whose Ready condition is True at their current generation (one API call)."""
    ready = set()
    for item in kube.get("ptwin", "-A")["items"]:
        meta = item["metadata"]
        for condition in (item.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "Ready"
                and condition.get("status") == "True"
                and condition.get("observedGeneration") == meta["generation"]
            ):
                ready.add((meta["namespace"], meta["name"]))
    return ready


def _apply_and_time(kube: KubeCluster, namespaces: list[str]) -> tuple[dict[Key, float], float]:
    """Apply the minimal twin in each namespace; seconds to Ready per twin, and for all."""
    applied: dict[Key, float] = {}
    first = time.monotonic()
    for namespace in namespaces:
        applied[(namespace, TWIN)] = time.monotonic()
        kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SMALL_TWIN))
    seconds: dict[Key, float] = {}
    deadline = first + TIMEOUT_S
    while len(seconds) < len(applied):
        now = time.monotonic()
        for key in _ready_twins(kube) & applied.keys() - seconds.keys():
            seconds[key] = now - applied[key]
        if time.monotonic() > deadline:
            waiting = sorted(applied.keys() - seconds.keys())
            pods = kube.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
            raise RuntimeError(f"not Ready after {TIMEOUT_S:.0f}s: {waiting}\n{pods[-4000:]}")
        time.sleep(1)
    return seconds, max(applied[k] + s for k, s in seconds.items()) - first


def _rss_by_component(kube: KubeCluster, namespaces: list[str]) -> dict[str, list[int]]:
    """RSS (bytes) of every twin Pod by component, and of the operator and Qdrant Pods."""
    pods = {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}": p
        for p in kube.get("pods", "-A")["items"]
    }
    wanted: dict[str, str] = {}
    for name, pod in pods.items():
        namespace, labels = pod["metadata"]["namespace"], pod["metadata"].get("labels", {})
        if namespace in namespaces and "phoenixtwin.io/twin" in labels:
            wanted[name] = labels["app.kubernetes.io/component"]
        elif namespace == QDRANT_NAMESPACE:
            wanted[name] = "qdrant"
        elif labels.get("app.kubernetes.io/name") == "phoenixtwin" and namespace.startswith(
            "phx-system"
        ):
            wanted[name] = "operator"
    found: dict[str, dict[str, int]] = {}

    def measured() -> bool:
        figures = pod_memory(kube)
        found.clear()
        found.update({name: figures[name] for name in wanted if name in figures})
        return set(found) == set(wanted) and all(m["rss"] > 0 for m in found.values())

    wait_for(measured, what="the kubelet's memory stats of every Pod", timeout=180)
    by_component: dict[str, list[int]] = defaultdict(list)
    for name, memory in found.items():
        by_component[wanted[name]].append(memory["rss"])
    return dict(by_component)


def _measure(workdir: Path) -> list[Figure]:
    state = localcluster.start(workdir, node="real")
    try:
        images.load(state, list(images.ALL_IMAGES))
        kube = KubeCluster(
            kubeconfig=state.kubeconfig,
            kubectl_path=str(Path(state.bindir) / "kubectl"),
            local=True,
            node="real",
            workdir=str(workdir),
        )
        create_namespace(kube, QDRANT_NAMESPACE, **pss("restricted"))
        kube.apply(*qdrant_objects())
        rollout(kube, QDRANT_NAMESPACE, "deployment/qdrant", timeout=300)
        system = create_namespace(kube, "phx-system", **pss("restricted"))
        Release(kube, "phx", system).install(images.image_tag())
        # tools with sandbox bwrap needs `privileged` (docs/operator.md, "Pod Security levels").
        namespaces = [
            create_namespace(kube, f"twin-{i}", **pss("privileged")) for i in range(BATCH + 1)
        ]
        alone, _ = _apply_and_time(kube, namespaces[:1])
        batch, total = _apply_and_time(kube, namespaces[1:])
        rss = _rss_by_component(kube, namespaces)
    finally:
        localcluster.stop(workdir)
    left = localcluster.leftovers(state)
    if left:
        raise RuntimeError(f"the real-node cluster left behind: {left}")
    (one,) = alone.values()
    per_twin = sorted(batch.values())
    print(
        f"twins        per twin, {BATCH} at once (s): {json.dumps([round(s, 1) for s in per_twin])}"
    )
    figures = [
        Figure("twins", "kubectl apply -> Ready, 1 twin", one, "s"),
        Figure(
            "twins",
            f"apply -> Ready per twin, {BATCH} at once, p50",
            statistics.median(per_twin),
            "s",
            baseline=one,
            baseline_name="1 twin",
        ),
        Figure(
            "twins",
            f"apply -> Ready per twin, {BATCH} at once, max",
            per_twin[-1],
            "s",
            baseline=one,
            baseline_name="1 twin",
        ),
        Figure(
            "twins",
            f"first apply -> last Ready, {BATCH} at once",
            total,
            "s",
            baseline=one * BATCH,
            baseline_name=f"{BATCH} x 1 twin",
        ),
    ]
    for component, sizes in sorted(rss.items()):
        figures.append(
            Figure(
                "twins",
                f"RSS per {component} Pod (mean of {len(sizes)})",
                statistics.mean(sizes) / 2**20,
                "MiB",
            )
        )
    every = sum(sum(sizes) for sizes in rss.values())
    figures.append(Figure("twins", f"RSS of all Pods, {BATCH + 1} twins", every / 2**20, "MiB"))
    return figures


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-twins-") as tmp:
        return _measure(Path(tmp) / "real")
