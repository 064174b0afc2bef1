"""phoenix-operator on a real control plane: create, update, drift, suspend, delete, bad input.

The operator runs as a subprocess (``phoenix-operator --all-namespaces``) with its
default Qdrant mapped to qdrant-client local mode (PHOENIX_QDRANT_LOCAL_PATH);
kwok marks the twin's pods Running and Ready, so Deployments roll out for real.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import (
    COMPONENTS,
    OperatorProcess,
    condition,
    get_or_none,
    install_crd,
    ready_at_generation,
    running_operator,
    twin,
)

RESYNC_SECONDS = 2


@pytest.fixture(scope="module")
def operator(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install_crd(kube_cluster)
    with running_operator(
        kube_cluster,
        tmp_path_factory.mktemp("operator"),
        PHOENIX_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
        PHOENIX_OPERATOR_QDRANT_RETRY_SECONDS="1",
        PHOENIX_OPERATOR_QDRANT_TIMEOUT_SECONDS="1",
        PHOENIX_OPERATOR_RECLAIM_MAX_ATTEMPTS="2",
    ) as process:
        yield process


def wait_ready(kube: KubeCluster, namespace: str, name: str, timeout: float = 60) -> None:
    wait_for(
        ready_at_generation(kube, namespace, name),
        what=f"PhoenixTwin {namespace}/{name} Ready at its generation",
        timeout=timeout,
    )


def deployments(kube: KubeCluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    items = kube.get(
        "deployments,statefulsets", "-n", namespace, "-l", f"phoenixtwin.io/twin={name}"
    )["items"]
    return {item["metadata"]["labels"]["app.kubernetes.io/component"]: item for item in items}


CHILD_KINDS = (
    "serviceaccounts,configmaps,secrets,services,deployments,statefulsets,networkpolicies,pdb"
)


def child_names(kube: KubeCluster, namespace: str, name: str) -> set[tuple[str, str]]:
    items = kube.get(CHILD_KINDS, "-n", namespace, "-l", f"phoenixtwin.io/twin={name}")["items"]
    return {(item["kind"], item["metadata"]["name"]) for item in items}


def test_empty_spec_twin_gets_every_child_and_becomes_ready(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("alice", namespace))
    waited = kube_cluster.kubectl(
        "wait", "--for=condition=Ready", "ptwin/alice", "-n", namespace, "--timeout=60s"
    )
    assert waited.returncode == 0

    body = kube_cluster.get("ptwin", "alice", "-n", namespace)
    uid = body["metadata"]["uid"]
    assert child_names(kube_cluster, namespace, "alice") == {
        ("ServiceAccount", "alice"),
        ("Secret", "alice-gateway-api-key"),
        ("Secret", "alice-gateway-session"),
        *{("ConfigMap", f"alice-{c}-env") for c in COMPONENTS},
        ("ConfigMap", "alice-tools-policy"),
        ("NetworkPolicy", "alice-default-deny"),
        *{("NetworkPolicy", f"alice-{c}") for c in COMPONENTS},
        *{("Service", f"alice-{c}") for c in COMPONENTS},
        *{("Deployment", f"alice-{c}") for c in COMPONENTS if c != "orchestrator"},
        ("StatefulSet", "alice-orchestrator"),
    }
    found = deployments(kube_cluster, namespace, "alice")
    for component, deployment in found.items():
        owner = deployment["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("PhoenixTwin", uid, True)
        name = deployment["metadata"]["name"]
        kind = deployment["kind"].lower()
        fields = kube_cluster.get(kind, name, "-n", namespace, "--show-managed-fields")
        managers = {(m["manager"], m["operation"]) for m in fields["metadata"]["managedFields"]}
        assert ("phoenix-operator", "Apply") in managers
        template = deployment["spec"]["template"]
        assert (
            template["metadata"]["annotations"]["phoenixtwin.io/config-hash"]
            == (body["status"]["components"][component]["configHash"])
        )
        assert template["spec"]["containers"][0]["envFrom"] == [
            {"configMapRef": {"name": f"alice-{component}-env"}}
        ]
    tools = found["tools"]["spec"]["template"]["spec"]
    assert tools["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert tools["hostUsers"] is False
    assert tools["containers"][0]["securityContext"]["procMount"] == "Unmasked"
    gateway = found["gateway"]["spec"]["template"]["spec"]
    assert gateway["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # The generated key reaches the gateway as a file named after the twin, never as env.
    assert "env" not in gateway["containers"][0]
    assert {
        "name": "api-keys",
        "secret": {
            "secretName": "alice-gateway-api-key",
            "items": [{"key": "api-key", "path": "alice"}],
            "defaultMode": 0o440,
        },
    } in gateway["volumes"]
    orchestrator_env = kube_cluster.get("configmap", "alice-orchestrator-env", "-n", namespace)
    assert orchestrator_env["data"]["MEMORY_GRPC_ADDR"] == "http://alice-memory:50052"
    assert orchestrator_env["data"]["LLM_PROVIDER"] == "mock"

    status = body["status"]
    assert status["phase"] == "Ready"
    assert status["componentsReady"] == "4/4"
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    assert status["collections"] == [f"phx.{namespace}.alice.default"]
    # The memory service owns the schema and creates collections on first use: not the operator.
    assert operator.collections(namespace) == []
    assert "kopf" not in json.dumps(body["status"])
    assert not any("kopf.zalando.org" in key for key in body["metadata"].get("annotations", {}))


def test_spec_change_rolls_only_the_deployments_whose_config_changed(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("bob", namespace))
    wait_ready(kube_cluster, namespace, "bob")
    before = deployments(kube_cluster, namespace, "bob")
    key_before = kube_cluster.get("secret", "bob-gateway-api-key", "-n", namespace)["data"]

    kube_cluster.kubectl(
        "patch", "ptwin", "bob", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"llm": {"model": "mistralai/mistral-7b-instruct"}}}),
    )  # fmt: skip
    wait_ready(kube_cluster, namespace, "bob")
    after = deployments(kube_cluster, namespace, "bob")
    rolled = {
        c
        for c in COMPONENTS
        if after[c]["metadata"]["generation"] != before[c]["metadata"]["generation"]
    }
    assert rolled == {"orchestrator"}
    env = kube_cluster.get("configmap", "bob-orchestrator-env", "-n", namespace)["data"]
    assert env["OPENROUTER_MODEL"] == "mistralai/mistral-7b-instruct"

    kube_cluster.kubectl(
        "patch", "ptwin", "bob", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"tools": {"policy": {"allowed": ["ls", "cat"]}}}}),
    )  # fmt: skip
    wait_ready(kube_cluster, namespace, "bob")
    again = deployments(kube_cluster, namespace, "bob")
    rolled = {
        c
        for c in COMPONENTS
        if again[c]["metadata"]["generation"] != after[c]["metadata"]["generation"]
    }
    # The orchestrator checks an approver's edited arguments against the same policy
    # (TOOL_POLICY in its env, issue 15), so it rolls with tools; the gateway and memory do not.
    assert rolled == {"tools", "orchestrator"}
    orchestrator_env = kube_cluster.get("configmap", "bob-orchestrator-env", "-n", namespace)
    seen_by_orchestrator = json.loads(orchestrator_env["data"]["TOOL_POLICY"])
    assert seen_by_orchestrator["twins"]["*"]["allowed"] == ["ls", "cat"]
    policy = kube_cluster.get("configmap", "bob-tools-policy", "-n", namespace)["data"]
    assert json.loads(policy["policy.json"])["twins"]["*"]["allowed"] == ["ls", "cat"]
    assert kube_cluster.get("secret", "bob-gateway-api-key", "-n", namespace)["data"] == key_before


def test_replicas_above_one_get_a_disruption_budget_that_goes_away_again(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("carol", namespace, {"gateway": {"replicas": 2}}))
    wait_ready(kube_cluster, namespace, "carol")
    pdb = kube_cluster.get("pdb", "carol-gateway", "-n", namespace)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert child_names(kube_cluster, namespace, "carol") >= {("Deployment", "carol-gateway")}

    kube_cluster.kubectl(
        "patch", "ptwin", "carol", "-n", namespace, "--type=merge",
        "-p", '{"spec":{"gateway":{"replicas":1},"networkPolicy":"Unmanaged"}}',
    )  # fmt: skip
    wait_ready(kube_cluster, namespace, "carol")
    wait_for(
        lambda: (
            not {k for k, _ in child_names(kube_cluster, namespace, "carol")}
            & {"PodDisruptionBudget", "NetworkPolicy"}
        ),
        what="the PDB and NetworkPolicies to be pruned",
        timeout=10,
    )


def test_deleted_or_edited_children_are_restored_within_ten_seconds(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("dave", namespace))
    wait_ready(kube_cluster, namespace, "dave")
    before = child_names(kube_cluster, namespace, "dave")
    secret = kube_cluster.get("secret", "dave-gateway-api-key", "-n", namespace)["data"]

    kube_cluster.kubectl("delete", "deployment", "dave-memory", "-n", namespace, "--wait=false")
    kube_cluster.kubectl("delete", "service", "dave-tools", "-n", namespace, "--wait=false")
    kube_cluster.kubectl("delete", "networkpolicy", "dave-default-deny", "-n", namespace)
    kube_cluster.kubectl(
        "patch", "configmap", "dave-gateway-env", "-n", namespace, "--type=merge",
        "-p", '{"data":{"GATEWAY_PORT":"1"}}',
    )  # fmt: skip
    kube_cluster.kubectl("scale", "deployment", "dave-gateway", "-n", namespace, "--replicas=0")

    def restored() -> bool:
        gateway_env = get_or_none(kube_cluster, "configmap", "dave-gateway-env", "-n", namespace)
        gateway = get_or_none(kube_cluster, "deployment", "dave-gateway", "-n", namespace)
        return (
            child_names(kube_cluster, namespace, "dave") == before
            and gateway_env is not None
            and gateway_env["data"]["GATEWAY_PORT"] == "8181"
            and gateway is not None
            and gateway["spec"]["replicas"] == 1
        )

    wait_for(restored, what="every child of dave restored", timeout=10)
    assert kube_cluster.get("secret", "dave-gateway-api-key", "-n", namespace)["data"] == secret
    wait_ready(kube_cluster, namespace, "dave")
    events = kube_cluster.get(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=dave"
    )["items"]
    assert "ChildRestored" in {event["reason"] for event in events}


def test_a_converged_twin_costs_no_api_writes_on_resync(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("erin", namespace, {"memory": {"namespaces": ["default", "work"]}}))
    wait_ready(kube_cluster, namespace, "erin")

    def versions() -> dict[tuple[str, str], str]:
        """resourceVersion of the twin and each child: any write would change one."""
        items = kube_cluster.get(CHILD_KINDS, "-n", namespace, "-l", "phoenixtwin.io/twin=erin")[
            "items"
        ]
        items.append(kube_cluster.get("ptwin", "erin", "-n", namespace))
        return {(i["kind"], i["metadata"]["name"]): i["metadata"]["resourceVersion"] for i in items}

    # The rollout's last status updates may still be in flight.
    wait_for(lambda: _quiet(operator), what="operator writes to settle", timeout=60)
    before, resyncs = versions(), _resyncs(operator)
    wait_for(
        lambda: _resyncs(operator) >= resyncs + 3,
        what="three resyncs",
        timeout=RESYNC_SECONDS * 10,
    )
    assert versions() == before


def _quiet(operator: OperatorProcess) -> bool:
    """No write during one resync interval (a measurement window, not synchronisation)."""
    before = operator.api_writes()
    time.sleep(RESYNC_SECONDS + 0.5)
    return operator.api_writes() == before


def _resyncs(operator: OperatorProcess) -> float:
    return sum(
        value
        for name, value in operator.metrics().items()
        if name.startswith("phoenix_operator_reconciles_total") and 'trigger="resync"' in name
    )


def test_suspended_twin_is_left_alone_until_resumed(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("fay", namespace))
    wait_ready(kube_cluster, namespace, "fay")
    kube_cluster.kubectl(
        "patch", "ptwin", "fay", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    wait_for(
        lambda: (
            kube_cluster.get("ptwin", "fay", "-n", namespace)["status"].get("phase") == "Suspended"
        ),
        what="phase Suspended",
        timeout=15,
    )
    kube_cluster.kubectl("delete", "deployment", "fay-tools", "-n", namespace)
    progressing = condition(kube_cluster.get("ptwin", "fay", "-n", namespace), "Progressing")
    assert progressing["reason"] == "Suspended"
    with pytest.raises(AssertionError):
        wait_for(
            lambda: (
                get_or_none(kube_cluster, "deployment", "fay-tools", "-n", namespace) is not None
            ),
            what="fay-tools (must stay deleted while suspended)",
            timeout=RESYNC_SECONDS * 2 + 1,
        )
    kube_cluster.kubectl(
        "patch", "ptwin", "fay", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )
    wait_ready(kube_cluster, namespace, "fay")
    assert get_or_none(kube_cluster, "deployment", "fay-tools", "-n", namespace) is not None


def test_unreachable_qdrant_degrades_the_twin_with_the_reason(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    spec = {"memory": {"qdrant": {"url": "http://127.0.0.1:9"}}}
    kube_cluster.apply(twin("gus", namespace, spec))

    def degraded() -> bool:
        body = get_or_none(kube_cluster, "ptwin", "gus", "-n", namespace)
        return body is not None and condition(body, "Degraded").get("reason") == (
            "QdrantUnreachable"
        )

    wait_for(degraded, what="Degraded=QdrantUnreachable", timeout=30)
    body = kube_cluster.get("ptwin", "gus", "-n", namespace)
    assert condition(body, "Degraded")["status"] == "True"
    assert "127.0.0.1:9" in condition(body, "Degraded")["message"]
    assert condition(body, "Ready")["status"] == "False"
    assert body["status"]["phase"] == "Degraded"
    # The workloads are still deployed: only memory persistence is missing.
    assert set(deployments(kube_cluster, namespace, "gus")) == set(COMPONENTS)
    assert operator.healthy()


def test_deleted_twins_lose_their_children_and_collections_follow_the_reclaim_policy(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(
        twin("keep", namespace),
        twin("drop", namespace, {"memory": {"reclaimPolicy": "Delete", "namespaces": ["a", "b"]}}),
    )
    wait_ready(kube_cluster, namespace, "keep")
    wait_ready(kube_cluster, namespace, "drop")
    drop = kube_cluster.get("ptwin", "drop", "-n", namespace)
    keep = kube_cluster.get("ptwin", "keep", "-n", namespace)
    assert drop["metadata"]["finalizers"] == ["phoenixtwin.io/finalizer"]
    assert not keep["metadata"].get("finalizers")
    operator.seed_collections(  # what the twins' memory services create on first commits
        namespace,
        [f"phx.{namespace}.drop.a", f"phx.{namespace}.drop.b", f"phx.{namespace}.keep.default"],
    )
    assert operator.collections(namespace) == [
        f"phx.{namespace}.drop.a",
        f"phx.{namespace}.drop.b",
        f"phx.{namespace}.keep.default",
    ]

    kube_cluster.kubectl("delete", "ptwin", "keep", "drop", "-n", namespace, "--timeout=60s")
    wait_for(
        lambda: (
            not child_names(kube_cluster, namespace, "keep")
            and not child_names(kube_cluster, namespace, "drop")
        ),
        what="children garbage-collected",
        timeout=60,
    )
    assert operator.collections(namespace) == [f"phx.{namespace}.keep.default"]


def test_deletion_never_hangs_when_qdrant_is_gone(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    unreachable = {"memory": {"reclaimPolicy": "Delete", "qdrant": {"url": "http://127.0.0.1:9"}}}
    kube_cluster.apply(
        twin("skip", namespace, unreachable, annotations={"phoenixtwin.io/skip-reclaim": "true"}),
        twin("bounded", namespace, unreachable),
    )
    wait_for(
        lambda: all(
            (get_or_none(kube_cluster, "ptwin", n, "-n", namespace) or {})
            .get("metadata", {})
            .get("finalizers")
            for n in ("skip", "bounded")
        ),
        what="finalizers on both twins",
    )
    kube_cluster.kubectl("delete", "ptwin", "skip", "bounded", "-n", namespace, "--wait=false")
    wait_for(
        lambda: not kube_cluster.get("ptwin", "-n", namespace)["items"],
        what="both twins gone despite an unreachable Qdrant",
        timeout=60,
    )
    reasons = {
        event["reason"]
        for event in kube_cluster.get("events", "-n", namespace)["items"]
        if event["involvedObject"]["kind"] == "PhoenixTwin"
    }
    assert {"ReclaimSkipped", "ReclaimAbandoned"} <= reasons


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("a-name-that-is-far-too-long-for-children-x", {}, "at most 40 characters"),
    ("9lives", {}, "DNS-1035 label"),
    ("llm", {"llm": {"provider": "openrouter"}}, "llm.apiKeySecretRef is required"),
    ("dupes", {"memory": {"namespaces": ["a", "a"]}}, "Duplicate value"),
    ("slash", {"memory": {"namespaces": ["a/b"]}}, "should match"),
    ("cwdany", {"tools": {"sandbox": "cwd", "policy": {"allowed": ["*"]}}}, "tools.sandbox cwd"),
    (
        "overlap",
        {"tools": {"policy": {"allowed": ["rm"], "restricted": ["rm"]}}},
        "both allowed and restricted",
    ),
    ("many", {"gateway": {"replicas": 50}}, "less than or equal to 20"),
    ("url", {"memory": {"qdrant": {"url": "qdrant:6334"}}}, "memory.qdrant.url must be"),
    ("reclaim", {"memory": {"reclaimPolicy": "Shred"}}, "Unsupported value"),
    (
        "embed",
        {"memory": {"embedding": {"provider": "openai"}}},
        "memory.embedding.apiKeySecretRef is required",
    ),
]


@pytest.mark.parametrize(("name", "spec", "message"), INVALID, ids=[i[0][:12] for i in INVALID])
def test_invalid_twins_are_refused_by_the_api_server_with_a_clear_message(
    kube_cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any], message: str
) -> None:
    install_crd(kube_cluster)
    result = kube_cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps(twin(name, namespace, spec)), check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_vector_size_cannot_change_under_existing_collections(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    kube_cluster.apply(twin("vec", namespace))
    result = kube_cluster.kubectl(
        "patch", "ptwin", "vec", "-n", namespace, "--type=merge",
        "-p", '{"spec":{"memory":{"embedding":{"dimension":768}}}}', check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "memory.embedding.dimension is immutable" in result.stderr


def test_generated_api_key_is_never_logged(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    kube_cluster.apply(twin("hal", namespace))
    wait_ready(kube_cluster, namespace, "hal")
    data = kube_cluster.get("secret", "hal-gateway-api-key", "-n", namespace)["data"]
    key = base64.b64decode(data["api-key"]).decode()
    assert len(key) >= 32
    assert key not in operator.log.read_text(errors="replace")
