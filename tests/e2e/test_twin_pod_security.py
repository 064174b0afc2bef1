"""The Pod Security level of each rendered Pod, as the API server's own admission decides it.

Each component's Pod template (as the operator renders it, the orchestrator's claim
attached as the StatefulSet controller attaches it) is created with a server-side
dry run in namespaces enforcing `restricted`, `baseline` and `privileged`. The level
documented in docs/operator.md must admit it and the next stricter one refuse it.
No container runs, so this holds on kwok as on a real node.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.render import RenderContext, workloads
from tests.e2e.kube import KubeCluster, wait_for
from tests.operator.conftest import make_twin

LEVELS = ("restricted", "baseline", "privileged")
# (spec, component) -> the strictest level it meets (docs/operator.md, "Pod Security levels").
EXPECTED: dict[tuple[str, str], str] = {("default", c): "restricted" for c in COMPONENTS}
EXPECTED[("default", "tools")] = "privileged"
EXPECTED[("cwd", "tools")] = "restricted"
SPECS: dict[str, dict[str, Any]] = {
    "default": {},
    "cwd": {"tools": {"sandbox": "cwd", "policy": {"allowed": ["ls"]}}},
}


@pytest.fixture(scope="module")
def level_namespaces(kube_cluster: KubeCluster) -> Iterator[dict[str, str]]:
    names = {}
    for level in LEVELS:
        name = f"pss-{level}-{uuid.uuid4().hex[:6]}"
        kube_cluster.kubectl("create", "namespace", name)
        kube_cluster.kubectl(
            "label", "namespace", name,
            f"pod-security.kubernetes.io/enforce={level}",
            "pod-security.kubernetes.io/enforce-version=v1.34",
        )  # fmt: skip
        wait_for(functools.partial(has_default_account, kube_cluster, name), what=f"{name}/default")
        kube_cluster.kubectl("create", "serviceaccount", "alice", "-n", name)
        names[level] = name
    yield names
    kube_cluster.kubectl("delete", "namespace", *names.values(), "--wait=false", check=False)


def has_default_account(kube: KubeCluster, namespace: str) -> bool:
    return kube.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0


def pod_of(twin: Twin, component: str, namespace: str) -> dict[str, Any]:
    workload = workloads.workload(twin, component, RenderContext())  # type: ignore[arg-type]
    template = workload["spec"]["template"]
    spec = json.loads(json.dumps(template["spec"]))
    for claim in workload["spec"].get("volumeClaimTemplates") or []:
        name = claim["metadata"]["name"]
        claim_name = f"{name}-{workload['metadata']['name']}-0"
        spec["volumes"].append({"name": name, "persistentVolumeClaim": {"claimName": claim_name}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{component}-pss",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": spec,
    }


def admitted(kube: KubeCluster, pod: dict[str, Any]) -> tuple[bool, str]:
    result = kube.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False
    )
    return result.returncode == 0, result.stderr


@pytest.mark.parametrize(("spec_name", "component"), sorted(EXPECTED))
def test_each_pod_meets_exactly_its_documented_level(
    kube_cluster: KubeCluster, level_namespaces: dict[str, str], spec_name: str, component: str
) -> None:
    twin = make_twin(SPECS[spec_name])
    expected = EXPECTED[(spec_name, component)]
    strictness = LEVELS.index(expected)
    ok, err = admitted(kube_cluster, pod_of(twin, component, level_namespaces[expected]))
    assert ok, f"{component} ({spec_name}) refused at {expected}: {err}"
    if strictness > 0:
        stricter = LEVELS[strictness - 1]
        ok, err = admitted(kube_cluster, pod_of(twin, component, level_namespaces[stricter]))
        assert not ok, f"{component} ({spec_name}) is admitted at {stricter}: update the docs"
        assert "violates PodSecurity" in err


def test_the_bwrap_tools_pod_is_refused_by_baseline_for_exactly_the_documented_reasons(
    kube_cluster: KubeCluster, level_namespaces: dict[str, str]
) -> None:
    ok, err = admitted(kube_cluster, pod_of(make_twin(), "tools", level_namespaces["baseline"]))
    assert not ok
    for reason in ("seccompProfile", "procMount", "AppArmor profile"):
        assert reason in err, err
