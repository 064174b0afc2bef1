"""Deployments, Services, the ServiceAccount, PodDisruptionBudgets and the generated Secret."""

from __future__ import annotations

import base64
from typing import Any

from phoenix_operator import naming
from phoenix_operator.api import Component, Twin
from phoenix_operator.render import config
from phoenix_operator.render.common import (
    Manifest,
    RenderContext,
    bwrap_container_security,
    bwrap_pod_security,
    metadata,
    restricted_container_security,
    restricted_pod_security,
)


def image(twin: Twin, component: Component, ctx: RenderContext) -> str:
    spec = twin.spec.component(component)
    repository = spec.image or f"{ctx.image_prefix}{component}"
    return f"{repository}:{spec.tag or ctx.image_tag}"


def service_account(twin: Twin) -> Manifest:
    """One identity for the twin's pods; none of them talks to the Kubernetes API."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(twin, naming.service_account(twin)),
        "automountServiceAccountToken": False,
    }


def gateway_api_key_secret(twin: Twin, api_key: str) -> Manifest:
    """The generated gateway API key (only when spec.gateway.auth names no Secret).

    ``api_key`` is generated once by the caller and read back from the live
    Secret afterwards, so reconciling never rotates it.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(twin, naming.gateway_api_key_secret(twin)),
        "type": "Opaque",
        "data": {naming.GATEWAY_API_KEY: base64.b64encode(api_key.encode()).decode()},
    }


def _resources(twin: Twin, component: Component) -> dict[str, Any]:
    resources = twin.spec.component(component).resources
    rendered: dict[str, Any] = {}
    for part in ("requests", "limits"):
        values = getattr(resources, part).model_dump(exclude_none=True)
        if values:
            rendered[part] = values
    return rendered


def _probe(component: Component) -> dict[str, Any]:
    port = naming.PORTS[component]
    if component in ("memory", "tools"):
        return {"grpc": {"port": port}, "periodSeconds": 10}
    return {"tcpSocket": {"port": port}, "periodSeconds": 10}


def _container_ports(component: Component) -> list[dict[str, Any]]:
    ports = [{"name": "serve", "containerPort": naming.PORTS[component], "protocol": "TCP"}]
    if component in naming.METRICS_PORTS:
        ports.append(
            {
                "name": "metrics",
                "containerPort": naming.METRICS_PORTS[component],
                "protocol": "TCP",
            }
        )
    return ports


def deployment(twin: Twin, component: Component, ctx: RenderContext) -> Manifest:
    """A component's Deployment; its pod template carries the component's config hash."""
    bwrap = component == "tools" and twin.spec.tools.sandbox == "bwrap"
    container: dict[str, Any] = {
        "name": component,
        "image": image(twin, component, ctx),
        "imagePullPolicy": "IfNotPresent",
        "envFrom": [{"configMapRef": {"name": naming.env_configmap(twin, component)}}],
        "ports": _container_ports(component),
        "readinessProbe": _probe(component),
        "livenessProbe": {**_probe(component), "failureThreshold": 6},
        "resources": _resources(twin, component),
        "securityContext": bwrap_container_security() if bwrap else restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    env = config.secret_env(twin, component)
    if env:
        container["env"] = env
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": naming.service_account(twin),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": bwrap_pod_security() if bwrap else restricted_pod_security(),
        "containers": [container],
        "volumes": volumes,
    }
    if component == "gateway":
        key = config.gateway_api_key_ref(twin)
        container["volumeMounts"] += [
            {"name": "api-keys", "mountPath": config.GATEWAY_KEYS_DIR, "readOnly": True}
        ]
        volumes += [
            {
                "name": "api-keys",
                "secret": {
                    "secretName": key.name,
                    "items": [{"key": key.key, "path": twin.name}],
                    "defaultMode": 0o440,
                },
            }
        ]
    if component == "tools":
        container["volumeMounts"] += [
            {"name": "sandbox", "mountPath": config.SANDBOX_DIR},
            {"name": "policy", "mountPath": config.TOOLS_POLICY_DIR, "readOnly": True},
        ]
        volumes += [
            {"name": "sandbox", "emptyDir": {}},
            {"name": "policy", "configMap": {"name": naming.tools_policy_configmap(twin)}},
        ]
        pod_spec["nodeSelector"] = {"kubernetes.io/os": "linux"}
        if bwrap:
            pod_spec["hostUsers"] = False
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            twin,
            naming.component_name(twin, component),
            naming.component_labels(twin, component),
        ),
        "spec": {
            "replicas": twin.spec.component(component).replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": naming.selector(twin, component)},
            "template": {
                "metadata": {
                    "labels": naming.component_labels(twin, component),
                    "annotations": {
                        naming.CONFIG_HASH_ANNOTATION: config.config_hash(twin, component, ctx)
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def service(twin: Twin, component: Component) -> Manifest:
    ports = [
        {
            "name": "serve",
            "port": naming.PORTS[component],
            "targetPort": naming.PORTS[component],
            "protocol": "TCP",
        }
    ]
    if component in naming.METRICS_PORTS:
        port = naming.METRICS_PORTS[component]
        ports.append({"name": "metrics", "port": port, "targetPort": port, "protocol": "TCP"})
    service_type = twin.spec.gateway.service_type if component == "gateway" else "ClusterIP"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            twin,
            naming.component_name(twin, component),
            naming.component_labels(twin, component),
        ),
        "spec": {
            "type": service_type,
            "selector": naming.selector(twin, component),
            "ports": ports,
        },
    }


def pod_disruption_budget(twin: Twin, component: Component) -> Manifest | None:
    """At most one pod of a component down at a time; none when it has a single replica.

    A budget on one replica would block every node drain, so none is rendered then.
    """
    if twin.spec.component(component).replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(
            twin,
            naming.component_name(twin, component),
            naming.component_labels(twin, component),
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": naming.selector(twin, component)},
        },
    }
