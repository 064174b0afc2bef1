"""The chart renders what the issue asks for: helm lint, helm template and values.schema.json."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    REPO,
    find,
    helm,
    one,
    render,
    template_args,
)

VALUES = Path(__file__).parent / "values"
CHILD_VERBS = ["get", "list", "watch", "create", "patch", "update", "delete"]
# Exactly what the operator needs in a namespace it serves (rbac.yaml, phoenixtwin.namespacedRules).
NAMESPACED_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["phoenixtwin.io"],
        "resources": ["phoenixtwins"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["phoenixtwin.io"],
        "resources": ["phoenixtwins/status"],
        "verbs": ["get", "patch"],
    },
    {
        "apiGroups": ["phoenixtwin.io"],
        "resources": ["phoenixtwins/finalizers"],
        "verbs": ["update"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps", "secrets", "serviceaccounts", "services"],
        "verbs": CHILD_VERBS,
    },
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": CHILD_VERBS},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": CHILD_VERBS},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": CHILD_VERBS},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
CRD_READ = {
    "apiGroups": ["apiextensions.k8s.io"],
    "resources": ["customresourcedefinitions"],
    "verbs": ["get", "list", "watch"],
}
NAMESPACES_WATCH = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}


def _operator(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --------------------------------------------------------------------------- lint, CRDs


@pytest.mark.parametrize(
    "values",
    [None, *sorted(CI_VALUES.glob("*-values.yaml"))],
    ids=lambda v: "default" if v is None else v.stem,
)
def test_helm_lint_is_clean(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    result = helm(*args)
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


def test_chart_crds_are_the_repo_crds() -> None:
    """helm/phoenixtwin/crds/ is a copy of crds/ (`cp crds/*.yaml helm/phoenixtwin/crds/`)."""
    repo_crds = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    chart_crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert repo_crds, "crds/ has no CRD"
    assert chart_crds == repo_crds, "helm/phoenixtwin/crds/ and crds/ hold different files"
    _, mismatch, errors = filecmp.cmpfiles(REPO / "crds", CHART / "crds", repo_crds, shallow=False)
    assert not mismatch + errors, (
        f"helm/phoenixtwin/crds/ differs from crds/ in {mismatch + errors}: "
        "run `cp crds/*.yaml helm/phoenixtwin/crds/`"
    )


def test_crds_are_only_in_crds_dir() -> None:
    """CRDs come from crds/ (installed first, never templated); templates hold none."""
    objects = render()
    assert not find(objects, "CustomResourceDefinition")
    with_crds = render("--include-crds")
    crd = one(with_crds, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "phoenixtwins.phoenixtwin.io"


# --------------------------------------------------------------------------- the default install


def test_default_render_has_the_expected_objects() -> None:
    objects = render()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert kinds == [
        ("ClusterRole", "phx-phoenixtwin"),
        ("ClusterRoleBinding", "phx-phoenixtwin"),
        ("Deployment", "phx-phoenixtwin"),
        ("Pod", "phx-phoenixtwin-test"),
        ("Service", "phx-phoenixtwin-metrics"),
        ("ServiceAccount", "phx-phoenixtwin"),
        ("ServiceAccount", "phx-phoenixtwin-test"),
    ]
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "phoenix-system", obj["kind"]


def test_operator_deployment_is_one_replica_recreate() -> None:
    deployment = one(render(), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _operator([deployment])
    assert container["image"] == "ghcr.io/phoenixtwin/phoenix-operator:0.1.0"
    assert container["args"] == ["--all-namespaces"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "phx-phoenixtwin"
    assert pod["automountServiceAccountToken"] is True


def test_operator_meets_the_restricted_pod_security_standard() -> None:
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = _operator([deployment])
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    # A read-only root needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert not pod.get("hostNetwork")
    assert not pod.get("hostPID")


def test_probes_ports_and_settings_follow_the_operator() -> None:
    container = _operator(render())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = _env(container)
    assert env["PHOENIX_OPERATOR_HEALTH_PORT"] == "8080"
    assert env["PHOENIX_OPERATOR_METRICS_PORT"] == "9090"
    assert env["PHOENIX_OPERATOR_DEFAULT_QDRANT_URL"] == "http://qdrant.qdrant.svc:6334"
    assert env["PHOENIX_OPERATOR_IMAGE_TAG"] == "0.1.0"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "PHOENIX_OPERATOR_DEFAULT_QDRANT_API_KEY" not in env


def test_operator_settings_exist() -> None:
    """Every PHOENIX_OPERATOR_* variable the chart sets is one OperatorSettings reads."""
    from phoenix_operator.settings import OperatorSettings

    aliases = {str(f.validation_alias) for f in OperatorSettings.model_fields.values()}
    container = _operator(render("--values", str(CI_VALUES / "full-values.yaml")))
    rendered = {e["name"] for e in container["env"] if e["name"].startswith("PHOENIX_OPERATOR_")}
    # The operator-wide Qdrant API key is passed on for when the operator reads it.
    unknown = rendered - aliases - {"PHOENIX_OPERATOR_DEFAULT_QDRANT_API_KEY"}
    assert not unknown, f"the chart sets variables the operator does not read: {unknown}"


def test_cluster_rbac_is_exactly_what_the_operator_needs() -> None:
    objects = render()
    role = one(objects, "ClusterRole")
    assert role["rules"] == [*NAMESPACED_RULES, NAMESPACES_WATCH, CRD_READ]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "phx-phoenixtwin",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "phx-phoenixtwin", "namespace": "phoenix-system"}
    ]
    assert not find(objects, "Role")
    assert not find(objects, "RoleBinding")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert "*" not in verbs
    assert "escalate" not in verbs
    assert "bind" not in verbs
    resources = {res for rule in role["rules"] for res in rule["resources"]}
    assert "leases" not in resources
    assert "pods" not in resources


def test_namespace_scope_uses_roles_and_namespace_flags() -> None:
    objects = render("--values", str(CI_VALUES / "namespaced-values.yaml"))
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert role["rules"] == NAMESPACED_RULES
    bindings = find(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "phoenix-system"
    # Cluster-wide: only kopf's read-only discovery (namespaces, CRDs), no writes.
    cluster_role = one(objects, "ClusterRole")
    assert cluster_role["metadata"]["name"] == "phx-phoenixtwin-discovery"
    assert cluster_role["rules"] == [NAMESPACES_WATCH, CRD_READ]
    cluster_binding = one(objects, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == "phx-phoenixtwin-discovery"
    assert _operator(objects)["args"] == ["--namespace=team-a", "--namespace=team-b"]


def test_strict_namespace_scope_creates_nothing_cluster_wide() -> None:
    objects = render("--values", str(CI_VALUES / "strict-namespaced-values.yaml"))
    assert not find(objects, "ClusterRole")
    assert not find(objects, "ClusterRoleBinding")
    role = one(objects, "Role")
    assert role["metadata"]["namespace"] == "phoenix-system"
    assert _operator(objects)["args"] == ["--namespace=phoenix-system"]


def test_peering_adds_replicas_and_kopf_peering_rules() -> None:
    objects = render("--values", str(CI_VALUES / "full-values.yaml"))
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    container = _operator(objects)
    assert container["image"] == f"ghcr.io/phoenixtwin/phoenix-operator@sha256:{'0' * 64}"
    # Equal kopf priorities freeze every peer: each Pod draws its own at start.
    assert container["command"] == ["/bin/sh", "-c"]
    script, argv0, *args = container["args"]
    assert script.startswith('exec phoenix-operator "$@" --priority=')
    assert "/dev/urandom" in script
    assert argv0 == "phoenix-operator"
    assert args == ["--all-namespaces", "--peering=phx-phoenixtwin"]
    assert one(objects, "ClusterRole")["rules"][-1] == {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    }
    namespaced = render(
        "--values", str(CI_VALUES / "namespaced-values.yaml"), "--set", "peering.enabled=true"
    )
    for role in find(namespaced, "Role"):
        assert role["rules"][-1]["resources"] == ["kopfpeerings"]


def test_extra_args_and_env_reach_the_operator() -> None:
    container = _operator(
        render(
            "--set",
            "operator.extraArgs={--priority=7}",
            "--set",
            "operator.extraEnv[0].name=PHOENIX_OPERATOR_QDRANT_TIMEOUT_SECONDS",
            "--set-string",
            "operator.extraEnv[0].value=10",
        )
    )
    assert "command" not in container  # the image's ENTRYPOINT, phoenix-operator
    assert container["args"] == ["--all-namespaces", "--priority=7"]
    assert _env(container)["PHOENIX_OPERATOR_QDRANT_TIMEOUT_SECONDS"] == "10"


def test_qdrant_api_key_comes_from_the_existing_secret() -> None:
    env = _env(_operator(render("--values", str(CI_VALUES / "full-values.yaml"))))
    assert env["PHOENIX_OPERATOR_DEFAULT_QDRANT_URL"] == "https://qdrant.qdrant.svc:6334"
    assert env["PHOENIX_OPERATOR_DEFAULT_QDRANT_API_KEY"] == {
        "secretKeyRef": {"name": "qdrant-api-key", "key": "api-key"}
    }


# --------------------------------------------------------------------------- metrics, helm test


def test_metrics_service_selects_only_the_operator() -> None:
    objects = render()
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
        {"name": "health", "port": 8080, "targetPort": "health", "protocol": "TCP"},
    ]
    selector = service["spec"]["selector"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    test_pod_labels = one(objects, "Pod")["metadata"]["labels"]
    assert not selector.items() <= test_pod_labels.items(), "the Service selects the test Pod"


def test_service_monitor_is_off_by_default_and_scrapes_the_metrics_port() -> None:
    assert not find(render(), "ServiceMonitor")
    objects = render("--values", str(CI_VALUES / "full-values.yaml"))
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = one(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )


def test_helm_test_hook_runs_the_operators_selfcheck_through_the_service() -> None:
    objects = render()
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/phoenixtwin/phoenix-operator:0.1.0"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["command"] == ["python", "-m", "phoenix_operator.selfcheck"]
    assert container["args"] == [
        "--health=http://phx-phoenixtwin-metrics.phoenix-system.svc:8080/healthz",
        "--metrics=http://phx-phoenixtwin-metrics.phoenix-system.svc:9090/metrics",
    ]
    # Its own ServiceAccount, created first, bound to nothing: the token only authenticates.
    account = next(
        o for o in find(objects, "ServiceAccount") if o["metadata"]["name"].endswith("-test")
    )
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        pod["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    bindings = find(objects, "ClusterRoleBinding") + find(objects, "RoleBinding")
    assert not [
        b for b in bindings for s in b["subjects"] if s["name"] == account["metadata"]["name"]
    ]
    service = one(objects, "Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "metrics": 9090,
        "health": 8080,
    }
    disabled = render("--set", "tests.enabled=false")
    assert not find(disabled, "Pod")
    assert len(find(disabled, "ServiceAccount")) == 1


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("bad-scope.yaml", "at '/rbac/scope': value must be one of 'cluster', 'namespace'"),
        ("bad-unknown-key.yaml", "additional properties 'replicaCount' not allowed"),
        (
            "bad-privilege-escalation.yaml",
            "at '/securityContext/allowPrivilegeEscalation': value must be false",
        ),
        ("bad-run-as-root.yaml", "at '/podSecurityContext/runAsNonRoot': value must be true"),
        ("bad-port-type.yaml", "at '/metrics/port': got string, want integer"),
        ("bad-qdrant-url.yaml", "at '/qdrant/url': 'qdrant:6334' does not match pattern"),
        ("bad-digest.yaml", "at '/image/digest': 'latest' does not match pattern"),
        ("bad-log-level.yaml", "at '/operator/logLevel': value must be one of"),
        ("bad-namespace-name.yaml", "at '/rbac/watchNamespaces/0': 'Team_A' does not match"),
    ],
)
def test_schema_refuses_bad_values(values: str, message: str) -> None:
    result = helm(*template_args("--values", str(VALUES / values)), check=False)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_watch_namespaces_with_cluster_scope_is_refused_with_a_clear_message() -> None:
    result = helm(*template_args("--set", "rbac.watchNamespaces={team-a}"), check=False)
    assert result.returncode != 0
    assert "rbac.watchNamespaces is only used with rbac.scope=namespace" in result.stderr


def test_every_value_is_in_the_schema() -> None:
    """values.yaml passes its own schema, and every key of it is declared there."""
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], where: str) -> None:
        if not isinstance(value, dict) or "properties" not in node:
            return
        for key, sub in value.items():
            assert key in node["properties"], f"{where}.{key} is not in values.schema.json"
            walk(sub, node["properties"][key], f"{where}.{key}")

    walk(values, schema, "values")
