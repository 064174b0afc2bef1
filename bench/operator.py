"""Operator benchmark on its own local control plane: 100 twins, side by side with kubectl.

1. ``kubectl apply --server-side`` of the very objects the operator renders for
   100 twins (owner references dropped), timed until every Deployment is
   available: what a perfect, zero-overhead controller could do.
2. The same 100 twins applied at once and reconciled by phoenix-operator,
   timed until every twin is Ready.
3. API writes (kube-apiserver ``apiserver_request_total``, POST/PUT/PATCH/DELETE
   on the kinds a twin owns) during one full resync of the 100 converged twins.
4. The operator's RSS with 100 twins.

Twins are spread over 10 namespaces (test Qdrant local mode is one directory
per namespace; each is opened per operation).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

import localcluster
from bench.report import Figure
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import OperatorProcess, install_crd, twin

TWINS = 100
NAMESPACES = 10
RESYNC_SECONDS = 20
TIMEOUT = 600
OWNED_RESOURCES = (
    "configmaps",
    "secrets",
    "serviceaccounts",
    "services",
    "deployments",
    "networkpolicies",
    "poddisruptionbudgets",
    "phoenixtwins",
)
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def _namespaces(prefix: str) -> list[str]:
    return [f"{prefix}-{i}" for i in range(NAMESPACES)]


def _create_namespaces(kube: KubeCluster, names: list[str]) -> None:
    for name in names:
        kube.kubectl("create", "namespace", name)

    def has_default_sa(name: str) -> bool:
        return kube.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0

    for name in names:
        wait_for(lambda: has_default_sa(name), what=f"ServiceAccount {name}/default")  # noqa: B023


def _rendered_objects(namespaces: list[str]) -> list[dict[str, Any]]:
    """What the operator would apply for TWINS twins, without owner references."""
    from phoenix_operator import render
    from phoenix_operator.api import Twin

    objects = []
    for i in range(TWINS):
        body = {
            "metadata": {
                "name": f"twin-{i}",
                "namespace": namespaces[i % NAMESPACES],
                "uid": "00000000-0000-0000-0000-000000000000",
                "generation": 1,
            },
            "spec": {},
        }
        for manifest in render.children(Twin.from_body(body), render.RenderContext(), "k" * 43):
            manifest["metadata"].pop("ownerReferences")
            objects.append(manifest)
    return objects


def _available_deployments(kube: KubeCluster, namespaces: list[str]) -> int:
    items = kube.get("deployments", "-A")["items"]
    return sum(
        1
        for d in items
        if d["metadata"]["namespace"] in namespaces
        and d.get("status", {}).get("availableReplicas", 0) >= d["spec"]["replicas"]
        and d.get("status", {}).get("observedGeneration", 0) >= d["metadata"]["generation"]
    )


def _ready_twins(kube: KubeCluster) -> int:
    items = kube.get("ptwin", "-A")["items"]
    return sum(
        1
        for t in items
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (t.get("status") or {}).get("conditions") or []
        )
        and (t.get("status") or {}).get("observedGeneration") == t["metadata"]["generation"]
    )


def _apiserver_writes(kube: KubeCluster) -> float:
    text = kube.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    total = 0.0
    pattern = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in OWNED_RESOURCES:
            total += float(match["value"])
    return total


def _resync_count(operator: OperatorProcess) -> float:
    return sum(
        value
        for name, value in operator.metrics().items()
        if name.startswith("phoenix_operator_reconciles_total") and 'trigger="resync"' in name
    )


def _baseline(kube: KubeCluster) -> float:
    namespaces = _namespaces("kubectl")
    _create_namespaces(kube, namespaces)
    objects = _rendered_objects(namespaces)
    started = time.monotonic()
    kube.kubectl(
        "apply",
        "--server-side",
        "--field-manager=bench",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        timeout=TIMEOUT,
    )
    wait_for(
        lambda: _available_deployments(kube, namespaces) == TWINS * 4,
        what="every baseline Deployment available",
        timeout=TIMEOUT,
        interval=0.5,
    )
    elapsed = time.monotonic() - started
    for name in namespaces:
        kube.kubectl("delete", "namespace", name, "--wait=false")
    return elapsed


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        workdir = Path(tmp)
        state = localcluster.start(workdir / "cluster", node="kwok")
        operator: OperatorProcess | None = None
        try:
            kube = KubeCluster(
                kubeconfig=state.kubeconfig,
                kubectl_path=str(Path(state.bindir) / "kubectl"),
                local=True,
            )
            install_crd(kube)
            baseline = _baseline(kube)

            namespaces = _namespaces("twins")
            _create_namespaces(kube, namespaces)
            operator = OperatorProcess(
                state.kubeconfig,
                workdir,
                PHOENIX_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
                PHOENIX_LOG_LEVEL="warning",
            )
            operator.start()
            twins = [twin(f"twin-{i}", namespaces[i % NAMESPACES]) for i in range(TWINS)]
            started = time.monotonic()
            kube.apply(*twins)
            wait_for(
                lambda: _ready_twins(kube) == TWINS,
                what=f"{TWINS} twins Ready",
                timeout=TIMEOUT,
                interval=0.5,
            )
            ready = time.monotonic() - started

            # One full resync of converged twins, after the rollout's writes settle.
            time.sleep(5)
            resyncs = _resync_count(operator)
            wait_for(
                lambda: _resync_count(operator) >= resyncs + TWINS,
                what="a resync pass to start",
                timeout=RESYNC_SECONDS * 3,
            )
            api_before, op_before = _apiserver_writes(kube), operator.api_writes()
            resyncs = _resync_count(operator)
            wait_for(
                lambda: _resync_count(operator) >= resyncs + TWINS,
                what="one full resync pass",
                timeout=RESYNC_SECONDS * 3,
            )
            api_writes = _apiserver_writes(kube) - api_before
            op_writes = operator.api_writes() - op_before
            assert operator.proc is not None
            rss = psutil.Process(operator.proc.pid).memory_info().rss / 2**20
        finally:
            if operator is not None:
                operator.stop()
            localcluster.stop(workdir / "cluster")
    return [
        Figure(
            "operator",
            f"{TWINS} twins applied at once -> all Ready",
            ready,
            "s",
            baseline=baseline,
            baseline_name="kubectl SSA of the same objects",
            goal="<= 1.5x",
        ),
        Figure(
            "operator",
            f"apiserver writes in a resync of {TWINS} converged twins",
            api_writes,
            "writes",
            goal="0",
        ),
        Figure(
            "operator",
            "operator-counted writes in that resync",
            op_writes,
            "writes",
            goal="0",
        ),
        Figure("operator", f"operator RSS with {TWINS} twins", rss, "MiB", goal="<= 150 MiB"),
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.line())
