"""Workloads, Services, the ServiceAccount, PDBs and the generated Secrets, field by field."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from phoenix_operator import render
from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.render import RenderContext, quantity, workloads

GENERATED = {"alice-gateway-api-key": "generated-key", "alice-gateway-session": "session-key"}


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {render.key(o): o for o in objects}


def pod(twin: Twin, component: str, ctx: RenderContext) -> dict[str, Any]:
    spec: dict[str, Any] = workloads.workload(twin, component, ctx)["spec"]  # type: ignore[arg-type]
    return dict(spec["template"]["spec"])


def test_an_empty_spec_renders_twenty_one_children_owned_by_the_twin(
    twin: Twin, ctx: RenderContext
) -> None:
    objects = render.children(twin, ctx, GENERATED)
    assert len(objects) == 21
    for manifest in objects:
        meta = manifest["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["labels"]["phoenixtwin.io/twin"] == "alice"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "phoenix-operator"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "phoenixtwin.io/v1alpha1",
                "kind": "PhoenixTwin",
                "name": "alice",
                "uid": twin.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    kinds = [o["kind"] for o in objects]
    assert kinds.index("ConfigMap") < kinds.index("Deployment")
    assert kinds.index("ConfigMap") < kinds.index("StatefulSet")
    assert sorted(k for k in kinds if k in ("Deployment", "StatefulSet")) == [
        "Deployment",
        "Deployment",
        "Deployment",
        "StatefulSet",
    ]


def test_children_need_every_generated_secret(twin: Twin, ctx: RenderContext) -> None:
    with pytest.raises(ValueError, match="alice-gateway-session"):
        render.children(twin, ctx, {"alice-gateway-api-key": "k"})


def test_the_tools_pod_gets_what_bubblewrap_needs(twin: Twin, ctx: RenderContext) -> None:
    tools = pod(twin, "tools", ctx)
    assert tools["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert tools["hostUsers"] is False
    assert tools["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
    }
    assert tools["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "procMount": "Unmasked",
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
    }
    mounts = {m["name"]: m["mountPath"] for m in tools["containers"][0]["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "sandbox": "/sandbox", "policy": "/etc/phoenix/tools"}  # noqa: S108 - asserted


def test_cwd_sandbox_tools_and_every_other_component_meet_restricted(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"tools": {"sandbox": "cwd", "policy": {"allowed": ["ls"]}}})
    for component in COMPONENTS:
        spec = pod(twin, component, ctx)
        assert "hostUsers" not in spec
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }


def test_images_default_to_the_operators_and_follow_the_spec(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"memory": {"image": "mirror.local/memory", "tag": "dev"}})
    image = {c: pod(twin, c, ctx)["containers"][0]["image"] for c in COMPONENTS}
    assert image == {
        "gateway": "registry.example/phoenix-gateway:1.2.3",
        "orchestrator": "registry.example/phoenix-orchestrator:1.2.3",
        "memory": "mirror.local/memory:dev",
        "tools": "registry.example/phoenix-tools:1.2.3",
    }


def test_replicas_resources_and_selector_come_from_the_spec(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory(
        {"memory": {"replicas": 3, "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}}
    )
    deployment = workloads.workload(twin, "memory", ctx)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"] == {
        "matchLabels": {
            "phoenixtwin.io/twin": "alice",
            "app.kubernetes.io/component": "memory",
        }
    }
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }


def test_a_disruption_budget_only_above_one_replica(
    twin_factory: Callable[..., Twin],
) -> None:
    twin = twin_factory({"gateway": {"replicas": 2}})
    pdb = workloads.pod_disruption_budget(twin, "gateway")
    assert pdb is not None
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {
                "phoenixtwin.io/twin": "alice",
                "app.kubernetes.io/component": "gateway",
            }
        },
    }
    assert workloads.pod_disruption_budget(twin, "memory") is None


def test_services_expose_each_components_port_and_metrics(
    twin_factory: Callable[..., Twin],
) -> None:
    twin = twin_factory({"gateway": {"serviceType": "LoadBalancer"}})
    gateway = workloads.service(twin, "gateway")["spec"]
    assert gateway["type"] == "LoadBalancer"
    assert gateway["ports"] == [
        {"name": "serve", "port": 8181, "targetPort": 8181, "protocol": "TCP"}
    ]
    memory = workloads.service(twin, "memory")["spec"]
    assert memory["type"] == "ClusterIP"
    assert [p["port"] for p in memory["ports"]] == [50052, 9152]
    assert [p["port"] for p in workloads.service(twin, "tools")["spec"]["ports"]] == [50054, 9154]


def test_the_generated_secrets_hold_the_given_values(twin: Twin, ctx: RenderContext) -> None:
    assert workloads.generated_secrets(twin) == [
        workloads.GeneratedSecret("alice-gateway-api-key", "api-key"),
        workloads.GeneratedSecret("alice-gateway-session", "session-key"),
    ]
    objects = by_key(render.children(twin, ctx, GENERATED))
    api_key = objects[("Secret", "alice-gateway-api-key")]
    assert base64.b64decode(api_key["data"]["api-key"]) == b"generated-key"
    session = objects[("Secret", "alice-gateway-session")]
    assert base64.b64decode(session["data"]["session-key"]) == b"session-key"


def test_no_secret_is_generated_when_the_twin_names_its_own(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"gateway": {"auth": {"apiKeySecretRef": {"name": "mine", "key": "k"}}}})
    assert workloads.generated_secrets(twin) == [
        workloads.GeneratedSecret("alice-gateway-session", "session-key")
    ]
    objects = by_key(render.children(twin, ctx, {"alice-gateway-session": "s"}))
    assert ("Secret", "alice-gateway-api-key") not in objects
    container = objects[("Deployment", "alice-gateway")]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert "env" not in container  # the key is a mounted file, never an environment variable
    volumes = objects[("Deployment", "alice-gateway")]["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "api-keys",
        "secret": {
            "secretName": "mine",
            "items": [{"key": "k", "path": "alice"}],
            "defaultMode": 0o440,
        },
    } in volumes
    assert {
        "name": "api-keys",
        "mountPath": "/etc/phoenix/gateway-keys",
        "readOnly": True,
    } in container["volumeMounts"]


def test_the_service_account_mounts_no_token(twin: Twin) -> None:
    assert workloads.service_account(twin)["automountServiceAccountToken"] is False


def test_the_orchestrator_is_one_stateful_pod_with_its_approvals_on_a_claim(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"orchestrator": {"storage": {"size": "2Gi", "storageClassName": "fast"}}})
    sts = workloads.workload(twin, "orchestrator", ctx)
    assert (sts["kind"], sts["metadata"]["name"]) == ("StatefulSet", "alice-orchestrator")
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "alice-orchestrator"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    assert spec["volumeClaimTemplates"] == [
        {
            "metadata": {
                "name": "state",
                "labels": {
                    "phoenixtwin.io/twin": "alice",
                    "app.kubernetes.io/component": "orchestrator",
                },
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "2Gi"}},
                "storageClassName": "fast",
            },
        }
    ]
    container = spec["template"]["spec"]["containers"][0]
    assert {"name": "state", "mountPath": "/var/lib/phoenix/orchestrator"} in container[
        "volumeMounts"
    ]
    # Without a class the claim gets the cluster's default StorageClass.
    claim = workloads.workload(twin_factory({}), "orchestrator", ctx)["spec"]
    assert "storageClassName" not in claim["volumeClaimTemplates"][0]["spec"]
    assert claim["volumeClaimTemplates"][0]["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


def test_a_stored_twin_above_one_orchestrator_runs_one_and_says_so(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"orchestrator": {"replicas": 3}})
    assert workloads.workload(twin, "orchestrator", ctx)["spec"]["replicas"] == 1
    assert workloads.pod_disruption_budget(twin, "orchestrator") is None
    [message] = render.unhonoured(twin)
    assert "spec.orchestrator.replicas is 3" in message
    assert "set it to 0 or 1" in message
    assert render.unhonoured(twin_factory({"orchestrator": {"replicas": 0}})) == []


def test_a_forty_character_twin_names_its_statefulset_within_52(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    """controller-revision-hash=<name>-<10 chars> must fit a 63-character label value."""
    long_name = "a" * 40
    twin = twin_factory(name=long_name)
    name = workloads.workload(twin, "orchestrator", ctx)["metadata"]["name"]
    assert name == f"{long_name}-orchestrato"
    assert len(name) + 11 <= 63
    assert workloads.workload(twin, "gateway", ctx)["metadata"]["name"] == f"{long_name}-gateway"


def test_the_gateway_pod_runs_the_telemetry_sidecar_and_mounts_the_session_key(
    twin: Twin, ctx: RenderContext
) -> None:
    spec = pod(twin, "gateway", ctx)
    gateway, telemetry = spec["containers"]
    assert telemetry["name"] == "telemetry"
    assert telemetry["image"] == gateway["image"]
    assert telemetry["args"] == ["telemetry"]
    assert telemetry["envFrom"] == gateway["envFrom"]
    assert telemetry["ports"] == [{"name": "telemetry", "containerPort": 8183, "protocol": "TCP"}]
    assert telemetry["readinessProbe"]["httpGet"] == {"path": "/health", "port": "telemetry"}
    assert {
        "name": "session-key",
        "secret": {
            "secretName": "alice-gateway-session",
            "items": [{"key": "session-key", "path": "session-key"}],
            "defaultMode": 0o440,
        },
    } in spec["volumes"]
    assert {
        "name": "session-key",
        "mountPath": "/etc/phoenix/gateway-session",
        "readOnly": True,
    } in gateway["volumeMounts"]
    assert "env" not in gateway  # neither key is ever an environment variable


def test_an_external_telemetry_url_means_no_sidecar(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"gateway": {"telemetryUrl": "https://telemetry.example"}})
    assert [c["name"] for c in pod(twin, "gateway", ctx)["containers"]] == ["gateway"]


@pytest.mark.parametrize(
    ("spelled", "stored"),
    [
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("0.5Ki", "512"),
        ("128Mi", "128Mi"),
        ("0.5", "500m"),
        ("1000m", "1"),
        ("50m", "50m"),
        ("2000", "2k"),
        ("1.5G", "1500M"),
        ("0", "0"),
    ],
)
def test_quantities_are_rendered_as_the_api_server_stores_them(spelled: str, stored: str) -> None:
    """Otherwise every live object differs from its rendering and is re-applied on each resync."""
    assert quantity.canonical(spelled) == stored


def test_resources_and_the_claim_use_canonical_quantities(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory(
        {
            "orchestrator": {
                "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
                "storage": {"size": "2048Mi"},
            }
        }
    )
    spec = workloads.workload(twin, "orchestrator", ctx)["spec"]
    assert spec["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "1Gi",
    }
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {"storage": "2Gi"}


def test_every_container_outlasts_a_busy_node_before_its_liveness_probe_restarts_it(
    twin: Twin, ctx: RenderContext
) -> None:
    """1 s probe timeouts killed memory Pods that were loading the model on a loaded node: every
    container has a startup probe of its own check, and liveness tolerates a minute of silence."""
    containers = [
        container
        for component in COMPONENTS
        for container in workloads.pod_spec(twin, component, ctx)["containers"]
    ]
    assert {c["name"] for c in containers} >= set(COMPONENTS) | {"telemetry"}
    for container in containers:
        startup, ready, live = (
            container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
        )
        check = {k: v for k, v in live.items() if k in ("grpc", "tcpSocket", "httpGet")}
        assert check, container["name"]
        for probe in (startup, ready):
            assert {k: v for k, v in probe.items() if k in check} == check, container["name"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, container["name"]
        assert live["timeoutSeconds"] >= 5, container["name"]
        assert live["periodSeconds"] * live["failureThreshold"] >= 60, container["name"]
