"""kwok: a fake node that marks scheduled Pods Running and Ready without running anything.

The default for tests that need only API behaviour and for the scale benchmarks; nothing may
dial a Pod IP it reports (they are made up).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from localcluster import procs
from localcluster.state import ClusterState

NODE_NAME = "kwok-node-0"

FAKE_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": NODE_NAME,
        "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        "labels": {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        },
    },
    "status": {
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
    },
}


def start(state: ClusterState, running: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    workdir, bindir = Path(state.workdir), Path(state.bindir)
    logdir, kubeconfig = workdir / "logs", Path(state.kubeconfig)
    config = workdir / "kwok.yaml"
    config.write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
    )
    running["kwok"] = procs.spawn(
        "kwok",
        [
            str(bindir / "kwok"),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=true",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.243.0.1",
            "--node-lease-duration-seconds=40",
            f"--config={config}",
        ],
        logdir,
    )
    state.pids["kwok"] = running["kwok"].pid
    state.save()
    procs.kubectl(bindir, kubeconfig, "apply", "-f", "-", stdin=json.dumps(FAKE_NODE))
    procs.wait(
        "the kwok Node to become Ready",
        lambda: (
            procs.kubectl(
                bindir,
                kubeconfig,
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            )
            == "True"
        ),
        timeout,
        running,
        logdir,
    )
