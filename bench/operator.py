"""Operator benchmark on its own local control plane (kwok runs the pods), side by side.

``PHOENIX_BENCH_TWINS`` twins (default 1,000) over 10 namespaces:

1. ``kubectl apply --server-side`` of the very objects the operator renders for
   them (owner references dropped), timed until every Deployment is available:
   what a perfect, zero-overhead controller could do.
2. The same twins applied at once and reconciled by phoenix-operator, timed
   until every twin is Ready.
3. API writes (kube-apiserver ``apiserver_request_total``, POST/PUT/PATCH/DELETE
   on the kinds a twin owns, by every client) during one resync of every twin.
4. The operator killed and restarted over the converged twins: seconds until
   every twin was checked (its resume reconcile), and the writes until then plus
   one resync of every twin.
5. A burst of child watch events (every ConfigMap of every twin annotated by
   another client): reconciles per twin it caused.
6. The operator's RSS idle and with every twin converged, and the per-twin slope.

Writes are counted by the API server itself (all clients) and by the operator.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

import localcluster
from bench.readiness import Readiness, available, twin_ready
from bench.report import Figure
from localcluster.fakenode import FAKE_NODE
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import OperatorProcess, install_crd, twin

TWINS = int(os.environ.get("PHOENIX_BENCH_TWINS", "1000"))
NAMESPACES = 10
RESYNC_SECONDS = int(os.environ.get("PHOENIX_BENCH_RESYNC_SECONDS", "60"))
TIMEOUT = 3600
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
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY")


# What one twin's four pods request (render/workloads.py), and what one kwok node offers
# (localcluster/fakenode.py: 32 CPU, 256 GiB, 1,000 pods): ~150 twins per node.
TWIN_CPU_MILLIS = 210
NODE_CPU_MILLIS = 32_000


def _nodes_for(twins: int) -> int:
    """kwok nodes (each as localcluster's) that hold ``twins`` twins' pods with room to spare."""
    return max(1, math.ceil(twins * TWIN_CPU_MILLIS * 1.25 / NODE_CPU_MILLIS))


def _add_kwok_nodes(kube: KubeCluster, count: int) -> None:
    """More fake nodes beside localcluster's one, so no pod of either side waits for room:
    with one node (~150 twins) the operator's twins waited for the kubectl baseline's
    namespaces to be garbage-collected, which made the ratio follow the machine's load."""
    nodes = []
    for i in range(count):
        node: dict[str, Any] = json.loads(json.dumps(FAKE_NODE))
        name = f"bench-kwok-{i}"
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        nodes.append(node)
    kube.apply(*nodes, server_side=False)

    def ready() -> int:
        return sum(
            1
            for node in kube.get("nodes")["items"]
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in node.get("status", {}).get("conditions") or []
            )
        )

    wait_for(lambda: ready() >= count + 1, what="the bench's kwok nodes Ready", timeout=300)


def _namespaces(prefix: str) -> list[str]:
    return [f"{prefix}-{i}" for i in range(NAMESPACES)]


def _create_namespaces(kube: KubeCluster, names: list[str]) -> None:
    for name in names:
        kube.kubectl("create", "namespace", name)

    def has_default_sa(name: str) -> bool:
        return kube.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0

    for name in names:
        wait_for(lambda: has_default_sa(name), what=f"ServiceAccount {name}/default")  # noqa: B023 - name is used before the loop moves on


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
        twin = Twin.from_body(body)
        generated = {secret.name: "k" * 43 for secret in render.generated_secrets(twin)}
        for manifest in render.children(twin, render.RenderContext(), generated):
            manifest["metadata"].pop("ownerReferences")
            objects.append(manifest)
    return objects


def _available_workloads(kube: KubeCluster, namespaces: list[str]) -> int:
    """Deployments and StatefulSets (the orchestrator) fully available, as the API lists them."""
    items = kube.get("deployments,statefulsets", "-A")["items"]
    return sum(d["metadata"]["namespace"] in namespaces and available(d) for d in items)


def _ready_twins(kube: KubeCluster) -> int:
    return sum(twin_ready(t) for t in kube.get("ptwin", "-A")["items"])


def _apiserver_writes(kube: KubeCluster) -> float:
    text = kube.kubectl("get", "--raw", "/metrics", timeout=120).stdout
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


def _counter(operator: OperatorProcess, name: str, label: str = "") -> float:
    return sum(
        value
        for sample, value in operator.metrics().items()
        if sample.startswith(name) and label in sample
    )


def _reconciles(operator: OperatorProcess, trigger: str) -> float:
    return _counter(operator, "phoenix_operator_reconciles_total", f'trigger="{trigger}"')


def _progress(message: str) -> None:
    """Each phase's figure as soon as it is known (a 1,000-twin run takes long)."""
    print(f"operator bench: {message}", file=sys.stderr, flush=True)


def _rss(operator: OperatorProcess) -> float:
    assert operator.proc is not None
    return float(psutil.Process(operator.proc.pid).memory_info().rss) / 2**20


def _baseline(kube: KubeCluster) -> float:
    namespaces = _namespaces("kubectl")
    _create_namespaces(kube, namespaces)
    objects = _rendered_objects(namespaces)
    workloads = [
        Readiness(kube.kubeconfig, ("apps", "v1", kind, plural), namespaces, available)
        for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets"))
    ]
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
        lambda: sum(watch.count() for watch in workloads) == TWINS * 4,
        what="every baseline workload available",
        timeout=TIMEOUT,
        interval=0.5,
    )
    elapsed = time.monotonic() - started
    for watch in workloads:
        watch.stop()
    assert _available_workloads(kube, namespaces) == TWINS * 4  # the API's own list agrees
    # Gone before the operator's turn: both sides start from an empty cluster.
    kube.kubectl("delete", "namespace", *namespaces, f"--timeout={TIMEOUT}s", timeout=TIMEOUT)
    return elapsed


def _full_resync(operator: OperatorProcess, kube: KubeCluster) -> tuple[float, float]:
    """API writes (apiserver-counted, operator-counted) while every twin is resynced once."""
    resyncs = _reconciles(operator, "resync")
    wait_for(
        lambda: _reconciles(operator, "resync") >= resyncs + TWINS,
        what="a resync pass to start",
        timeout=RESYNC_SECONDS * 4,
        interval=2,
    )
    api_before, op_before = _apiserver_writes(kube), operator.api_writes()
    resyncs = _reconciles(operator, "resync")
    wait_for(
        lambda: _reconciles(operator, "resync") >= resyncs + TWINS,
        what="one full resync pass",
        timeout=RESYNC_SECONDS * 4,
        interval=2,
    )
    return _apiserver_writes(kube) - api_before, operator.api_writes() - op_before


def _echo_burst(operator: OperatorProcess, kube: KubeCluster, namespaces: list[str]) -> float:
    """Annotate every twin's 5 ConfigMaps at once; child reconciles per twin it caused."""
    before = _reconciles(operator, "child")
    mark = str(time.monotonic_ns())
    for namespace in namespaces:
        kube.kubectl(
            "annotate", "configmap", "-n", namespace, "-l", "phoenixtwin.io/twin",
            f"bench.phoenixtwin.io/touched={mark}", "--overwrite", timeout=600,
        )  # fmt: skip

    def settled() -> bool:
        seen = _counter(operator, "phoenix_operator_child_events_total")
        time.sleep(3)  # a measurement window: no new child event for 3 s
        return _counter(operator, "phoenix_operator_child_events_total") == seen

    wait_for(settled, what="the burst's child events processed", timeout=600, interval=1)
    return (_reconciles(operator, "child") - before) / TWINS


def run() -> list[Figure]:
    figures: list[Figure] = []
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
            _add_kwok_nodes(kube, _nodes_for(TWINS))
            baseline = _baseline(kube)
            _progress(f"kubectl baseline {baseline:.1f} s")

            namespaces = _namespaces("twins")
            _create_namespaces(kube, namespaces)
            operator = OperatorProcess(
                state.kubeconfig,
                workdir,
                PHOENIX_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
                PHOENIX_LOG_LEVEL="warning",
            )
            operator.start()
            idle_rss = _rss(operator)
            twins = [twin(f"twin-{i}", namespaces[i % NAMESPACES]) for i in range(TWINS)]
            ready_twins = Readiness(
                kube.kubeconfig, ("phoenixtwin.io", "v1alpha1", "PhoenixTwin", "phoenixtwins"),
                namespaces, twin_ready,
            )  # fmt: skip
            started = time.monotonic()
            kube.kubectl(  # kubectl applies one object at a time: minutes for 1,000 twins
                "apply", "--server-side", "-f", "-", timeout=TIMEOUT,
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": twins}),
            )  # fmt: skip
            wait_for(
                lambda: ready_twins.count() == TWINS,
                what=f"{TWINS} twins Ready",
                timeout=TIMEOUT,
                interval=0.5,
            )
            ready = time.monotonic() - started
            ready_twins.stop()
            assert _ready_twins(kube) == TWINS  # the API's own list agrees
            _progress(f"operator all Ready {ready:.1f} s (idle RSS {idle_rss:.1f} MiB)")
            create_echoes = _counter(operator, "phoenix_operator_child_events_total")
            create_child_reconciles = _reconciles(operator, "child")

            resync_api, resync_op = _full_resync(operator, kube)
            rss = _rss(operator)
            _progress(f"resync writes api={resync_api} op={resync_op}; RSS {rss:.1f} MiB")

            operator.kill()
            api_before = _apiserver_writes(kube)
            operator.start()
            restarted = time.monotonic()
            wait_for(
                lambda: _reconciles(operator, "resume") >= TWINS,
                what="every twin checked after the restart",
                timeout=TIMEOUT,
                interval=1,
            )
            checked = time.monotonic() - restarted
            _full_resync(operator, kube)
            restart_api = _apiserver_writes(kube) - api_before
            restart_op = operator.api_writes()  # this process's count: all since its start
            restarted_rss = _rss(operator)
            _progress(
                f"restart: checked in {checked:.1f} s, writes api={restart_api} op={restart_op}"
            )

            per_twin_burst = _echo_burst(operator, kube, namespaces)
        finally:
            if operator is not None:
                operator.stop()
            localcluster.stop(workdir / "cluster")
    slope = (rss - idle_rss) / TWINS * 1024
    figures += [
        Figure(
            "operator",
            f"{TWINS} twins applied at once -> all Ready",
            ready,
            "s",
            baseline=baseline,
            baseline_name="kubectl SSA of the same objects",
            goal="<= 1.2x",
        ),
        Figure("operator", f"apiserver writes, resync of {TWINS} converged", resync_api, "writes",
               goal="0"),
        Figure("operator", "operator-counted writes in that resync", resync_op, "writes",
               goal="0"),
        Figure("operator", f"restart over {TWINS} converged: all checked", checked, "s",
               goal="<= 60 s"),
        Figure("operator", "apiserver writes, restart + one resync", restart_api, "writes",
               goal="0"),
        Figure("operator", "operator-counted writes, restart + resync", restart_op, "writes",
               goal="0"),
        Figure("operator", f"child events while creating {TWINS} twins", create_echoes, "events"),
        Figure("operator", "child-triggered reconciles while creating", create_child_reconciles,
               "reconciles"),
        Figure("operator", "reconciles per twin per burst of 5 child events", per_twin_burst,
               "per twin", goal="<= 1"),
        Figure("operator", "operator RSS idle", idle_rss, "MiB"),
        Figure("operator", f"operator RSS with {TWINS} converged twins", rss, "MiB",
               goal="<= 200 MiB"),
        Figure("operator", "operator RSS after restart", restarted_rss, "MiB",
               goal="<= 200 MiB"),  # the same operator, serving the same twins
        Figure("operator", "RSS per twin (slope)", slope, "KiB"),
    ]  # fmt: skip
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.line())
