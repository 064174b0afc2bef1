"""The test control plane: warm start time and its memory under a small workload."""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

import localcluster
from bench.report import Figure

DEPLOYMENTS = 50


def _tree_rss(pids: dict[str, int]) -> int:
    total = 0
    for pid in pids.values():
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run() -> list[Figure]:
    bindir = localcluster.ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-cp-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        readyz_at: list[float] = []

        def watch_readyz() -> None:
            # Poll the apiserver as soon as its port is known, independently of start().
            while time.monotonic() - started < 120 and not readyz_at:
                state = localcluster.ClusterState.load(workdir)
                if state and "kube-apiserver" in state.pids:
                    try:
                        urllib.request.urlopen(  # noqa: S310 - https, the local cluster
                            f"{state.server}/readyz",
                            context=localcluster.client_ssl(workdir / "pki"),
                            timeout=1,
                        ).close()
                        readyz_at.append(time.monotonic() - started)
                    except OSError:
                        pass
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_readyz)
        watcher.start()
        state = localcluster.start(workdir, bindir=bindir, node="kwok")
        all_ready = time.monotonic() - started
        watcher.join()
        if not readyz_at:
            raise RuntimeError("the apiserver's /readyz did not answer within 120 s")
        peak = _tree_rss(state.pids)
        try:
            kubectl = [str(bindir / "kubectl"), f"--kubeconfig={state.kubeconfig}"]
            items = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": f"load-{i}", "namespace": "default"},
                    "spec": {
                        "replicas": 2,
                        "selector": {"matchLabels": {"app": f"load-{i}"}},
                        "template": {
                            "metadata": {"labels": {"app": f"load-{i}"}},
                            "spec": {"containers": [{"name": "c", "image": "x.invalid/y:1"}]},
                        },
                    },
                }
                for i in range(DEPLOYMENTS)
            ]
            subprocess.run(
                [*kubectl, "apply", "--server-side", "-f", "-"],
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                text=True,
                check=True,
                capture_output=True,
            )
            deadline = time.monotonic() + 120
            running = 0
            while running < DEPLOYMENTS * 2:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{running} of {DEPLOYMENTS * 2} load pods Running in 120 s")
                peak = max(peak, _tree_rss(state.pids))
                out = subprocess.run(
                    [
                        *kubectl,
                        "get",
                        "pods",
                        "--namespace=default",  # the load's pods only, not the system's
                        "--field-selector=status.phase=Running",
                        "-o",
                        "name",
                    ],
                    text=True,
                    check=True,
                    capture_output=True,
                ).stdout
                running = len(out.split())
                if running < DEPLOYMENTS * 2:
                    time.sleep(0.5)
            peak = max(peak, _tree_rss(state.pids))
        finally:
            localcluster.stop(workdir)
    return [
        Figure("cluster", "warm start to apiserver /readyz", readyz_at[0], "s"),
        Figure("cluster", "warm start to Node Ready + default SA", all_ready, "s"),
        Figure(
            "cluster",
            f"peak RSS, all components, {DEPLOYMENTS * 2} running pods",
            peak / 2**20,
            "MiB",
        ),
    ]
