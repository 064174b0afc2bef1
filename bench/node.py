"""The real node beside kwok: warm cluster start, and `kubectl apply` of a Pod to Ready.

The real node runs the Pod (containerd, runc, CNI, the image's own readiness probe); kwok
marks it Ready on paper. The ratio is what a real Pod costs over the API-only baseline.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import localcluster
from bench.report import Figure
from localcluster import images
from localcluster.state import NodeKind
from tests.e2e.kube import KubeCluster
from tests.e2e.realnode import component_pod, wait_ready

COMPONENT = "tools"


def _cluster(workdir: Path, node: NodeKind) -> tuple[float, float]:
    """(seconds to start the cluster, seconds from `kubectl apply` to Pod Ready)."""
    started = time.monotonic()
    state = localcluster.start(workdir, node=node)
    start = time.monotonic() - started
    try:
        if node == "real":
            images.load(state, [COMPONENT])
        kube = KubeCluster(
            kubeconfig=state.kubeconfig,
            kubectl_path=str(Path(state.bindir) / "kubectl"),
            local=True,
            node=node,
        )
        kube.apply(component_pod(COMPONENT, "default"))
        applied = time.monotonic()
        wait_ready(kube, "default", COMPONENT)
        ready = time.monotonic() - applied
    finally:
        localcluster.stop(workdir)
    left = localcluster.leftovers(state)
    if left:
        raise RuntimeError(f"the {node} cluster left behind: {left}")
    return start, ready


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-node-") as tmp:
        kwok_start, kwok_ready = _cluster(Path(tmp) / "kwok", "kwok")
        real_start, real_ready = _cluster(Path(tmp) / "real", "real")
    return [
        Figure(
            "node",
            "warm start to Node Ready (+ CoreDNS for real)",
            real_start,
            "s",
            baseline=kwok_start,
            baseline_name="kwok",
        ),
        Figure(
            "node",
            f"kubectl apply -> Ready, {COMPONENT} image",
            real_ready,
            "s",
            baseline=kwok_ready,
            baseline_name="kwok",
        ),
    ]
