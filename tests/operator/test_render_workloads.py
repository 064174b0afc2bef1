"""Deployments, Services, the ServiceAccount, PDBs and the generated Secret, field by field."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from phoenix_operator import render
from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.render import RenderContext, workloads


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {render.key(o): o for o in objects}


def test_an_empty_spec_renders_twenty_children_owned_by_the_twin(
    twin: Twin, ctx: RenderContext
) -> None:
    objects = render.children(twin, ctx, "generated-key")
    assert len(objects) == 20
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


def test_the_tools_pod_gets_what_bubblewrap_needs(twin: Twin, ctx: RenderContext) -> None:
    pod = workloads.deployment(twin, "tools", ctx)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["hostUsers"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
    }
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "procMount": "Unmasked",
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
    }
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "sandbox": "/sandbox", "policy": "/etc/phoenix/tools"}


def test_cwd_sandbox_tools_and_every_other_component_meet_restricted(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"tools": {"sandbox": "cwd", "policy": {"allowed": ["ls"]}}})
    for component in COMPONENTS:
        pod = workloads.deployment(twin, component, ctx)["spec"]["template"]["spec"]
        assert "hostUsers" not in pod
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["containers"][0]["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def test_images_default_to_the_operators_and_follow_the_spec(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"memory": {"image": "mirror.local/memory", "tag": "dev"}})
    image = {
        c: workloads.deployment(twin, c, ctx)["spec"]["template"]["spec"]["containers"][0]["image"]
        for c in COMPONENTS
    }
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
        {"orchestrator": {"replicas": 3, "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}}
    )
    deployment = workloads.deployment(twin, "orchestrator", ctx)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"] == {
        "matchLabels": {
            "phoenixtwin.io/twin": "alice",
            "app.kubernetes.io/component": "orchestrator",
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


def test_the_generated_api_key_secret_holds_the_given_key(twin: Twin) -> None:
    secret = workloads.gateway_api_key_secret(twin, "s3cr3t")
    assert secret["metadata"]["name"] == "alice-gateway-api-key"
    assert base64.b64decode(secret["data"]["api-key"]) == b"s3cr3t"


def test_no_secret_is_generated_when_the_twin_names_its_own(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory({"gateway": {"auth": {"apiKeySecretRef": {"name": "mine", "key": "k"}}}})
    objects = by_key(render.children(twin, ctx, None))
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
