"""Workloads, Services, the ServiceAccount, PodDisruptionBudgets and the generated Secrets.

The gateway, memory and tools are Deployments (stateless, any replica count).
The orchestrator is a StatefulSet of at most one Pod with a PersistentVolumeClaim:
its pending approvals are one SQLite file with one writer, and a StatefulSet
never runs a replacement Pod before the old one is gone (a Deployment may, after
a node is lost), so the file never has two writers and survives rescheduling.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

from phoenix_operator import naming
from phoenix_operator.api import MAX_ORCHESTRATOR_REPLICAS, Component, Twin
from phoenix_operator.render import config, quantity
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


@dataclass(frozen=True)
class GeneratedSecret:
    """A Secret key the operator generates once per twin and then only reads back."""

    name: str
    key: str


def generated_secrets(twin: Twin) -> list[GeneratedSecret]:
    """The gateway's API key (unless the twin names its own) and its session-signing key."""
    wanted = []
    if twin.spec.gateway.auth.api_key_secret_ref is None:
        wanted.append(GeneratedSecret(naming.gateway_api_key_secret(twin), naming.GATEWAY_API_KEY))
    wanted.append(GeneratedSecret(naming.gateway_session_secret(twin), naming.GATEWAY_SESSION_KEY))
    return wanted


def generated_secret(twin: Twin, secret: GeneratedSecret, value: str) -> Manifest:
    """One generated Secret holding ``value``.

    ``value`` is generated once by the caller and read back from the live Secret
    afterwards, so reconciling never rotates it.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(twin, secret.name),
        "type": "Opaque",
        "data": {secret.key: base64.b64encode(value.encode()).decode()},
    }


WorkloadKind = Literal["Deployment", "StatefulSet"]


def workload_kind(component: Component) -> WorkloadKind:
    return "StatefulSet" if component == "orchestrator" else "Deployment"


def replicas(twin: Twin, component: Component) -> int:
    """Pods the component runs: the spec's, except that the orchestrator runs at most one."""
    wanted = twin.spec.component(component).replicas
    return min(wanted, MAX_ORCHESTRATOR_REPLICAS) if component == "orchestrator" else wanted


def unhonoured(twin: Twin) -> list[str]:
    """What the rendering does not do as the spec says (a twin stored before a CRD rule)."""
    wanted = twin.spec.orchestrator.replicas
    if wanted > MAX_ORCHESTRATOR_REPLICAS:
        return [
            f"spec.orchestrator.replicas is {wanted}, but the orchestrator's approval store has "
            f"one writer: running {MAX_ORCHESTRATOR_REPLICAS}; set it to 0 or 1"
        ]
    return []


def _resources(twin: Twin, component: Component) -> dict[str, Any]:
    resources = twin.spec.component(component).resources
    rendered: dict[str, Any] = {}
    for part in ("requests", "limits"):
        values = getattr(resources, part).model_dump(exclude_none=True)
        if values:
            rendered[part] = {name: quantity.canonical(q) for name, q in values.items()}
    return rendered


def probes(check: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Startup, readiness and liveness probes of one check, sized for a node under load.

    The kubelet's defaults (1 s timeout) killed memory Pods on a busy 2-core node while they
    loaded the model or embedded a batch, and the restarts kept 10 twins from ever becoming
    Ready. The startup probe gives a slow start 5 minutes before liveness applies; after that
    a process is restarted only when it has not answered for a whole minute."""
    return {
        "startupProbe": {**check, "periodSeconds": 2, "timeoutSeconds": 5, "failureThreshold": 150},
        "readinessProbe": {**check, "periodSeconds": 10, "timeoutSeconds": 5},
        "livenessProbe": {**check, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
    }


def _check(component: Component) -> dict[str, Any]:
    port = naming.PORTS[component]
    if component in ("memory", "tools"):
        return {"grpc": {"port": port}}
    return {"tcpSocket": {"port": port}}


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


def _telemetry_container(twin: Twin, ctx: RenderContext) -> dict[str, Any]:
    """The telemetry producer (``phoenix-gateway telemetry``), the gateway's SSE upstream.

    Same image and ConfigMap as the gateway; it reads TELEMETRY_HOST/PORT from it.
    Small fixed resources: it samples psutil every TELEMETRY_INTERVAL_MS.
    """
    return {
        "name": "telemetry",
        "image": image(twin, "gateway", ctx),
        "imagePullPolicy": "IfNotPresent",
        "args": ["telemetry"],
        "envFrom": [{"configMapRef": {"name": naming.env_configmap(twin, "gateway")}}],
        "ports": [{"name": "telemetry", "containerPort": naming.TELEMETRY_PORT, "protocol": "TCP"}],
        **probes({"httpGet": {"path": "/health", "port": "telemetry"}}),
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }


def _secret_volume(name: str, secret: str, key: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "secret": {
            "secretName": secret,
            "items": [{"key": key, "path": path}],
            "defaultMode": 0o440,
        },
    }


def _gateway_pod(twin: Twin, ctx: RenderContext, pod_spec: dict[str, Any]) -> None:
    container = pod_spec["containers"][0]
    key = config.gateway_api_key_ref(twin)
    session = config.gateway_session_ref(twin)
    container["volumeMounts"] += [
        {"name": "api-keys", "mountPath": config.GATEWAY_KEYS_DIR, "readOnly": True},
        {"name": "session-key", "mountPath": config.GATEWAY_SESSION_DIR, "readOnly": True},
    ]
    pod_spec["volumes"] += [
        _secret_volume("api-keys", key.name, key.key, twin.name),
        _secret_volume("session-key", session.name, session.key, session.key),
    ]
    if not twin.spec.gateway.telemetry_url:
        pod_spec["containers"].append(_telemetry_container(twin, ctx))


def _tools_pod(twin: Twin, pod_spec: dict[str, Any], bwrap: bool) -> None:
    pod_spec["containers"][0]["volumeMounts"] += [
        {"name": "sandbox", "mountPath": config.SANDBOX_VOLUME_DIR},
        {"name": "policy", "mountPath": config.TOOLS_POLICY_DIR, "readOnly": True},
    ]
    pod_spec["volumes"] += [
        {"name": "sandbox", "emptyDir": {}},
        {"name": "policy", "configMap": {"name": naming.tools_policy_configmap(twin)}},
    ]
    pod_spec["nodeSelector"] = {"kubernetes.io/os": "linux"}
    if bwrap:
        pod_spec["hostUsers"] = False


def pod_spec(twin: Twin, component: Component, ctx: RenderContext) -> dict[str, Any]:
    """The Pod template's spec of one component."""
    bwrap = component == "tools" and twin.spec.tools.sandbox == "bwrap"
    container: dict[str, Any] = {
        "name": component,
        "image": image(twin, component, ctx),
        "imagePullPolicy": "IfNotPresent",
        "envFrom": [{"configMapRef": {"name": naming.env_configmap(twin, component)}}],
        "ports": _container_ports(component),
        **probes(_check(component)),
        "resources": _resources(twin, component),
        "securityContext": bwrap_container_security() if bwrap else restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    env = config.secret_env(twin, component)
    if env:
        container["env"] = env
    spec: dict[str, Any] = {
        "serviceAccountName": naming.service_account(twin),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": bwrap_pod_security() if bwrap else restricted_pod_security(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if component == "gateway":
        _gateway_pod(twin, ctx, spec)
    elif component == "orchestrator":
        container["volumeMounts"].append(
            {"name": STATE_VOLUME, "mountPath": config.ORCHESTRATOR_STATE_DIR}
        )
        # The claim is chowned to fsGroup once, not on every mount of a grown volume.
        spec["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    elif component == "tools":
        _tools_pod(twin, spec, bwrap)
    return spec


STATE_VOLUME = "state"


def _state_claim(twin: Twin) -> dict[str, Any]:
    """The orchestrator's volume claim template (immutable once the StatefulSet exists)."""
    storage = twin.spec.orchestrator.storage
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": quantity.canonical(storage.size)}},
    }
    if storage.storage_class_name:
        claim["storageClassName"] = storage.storage_class_name
    return {
        "metadata": {"name": STATE_VOLUME, "labels": naming.selector(twin, "orchestrator")},
        "spec": claim,
    }


def workload(twin: Twin, component: Component, ctx: RenderContext) -> Manifest:
    """A component's Deployment (StatefulSet for the orchestrator), with its config hash."""
    kind = workload_kind(component)
    spec: dict[str, Any] = {
        "replicas": replicas(twin, component),
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": naming.selector(twin, component)},
        "template": {
            "metadata": {
                "labels": naming.component_labels(twin, component),
                "annotations": {
                    naming.CONFIG_HASH_ANNOTATION: config.config_hash(twin, component, ctx)
                },
            },
            "spec": pod_spec(twin, component, ctx),
        },
    }
    if kind == "StatefulSet":
        spec |= {
            "serviceName": naming.component_name(twin, component),
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            # Deleting the twin (so its StatefulSet) deletes the approval store with it;
            # scaling to 0 keeps it for the next Pod.
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete",
                "whenScaled": "Retain",
            },
            "volumeClaimTemplates": [_state_claim(twin)],
        }
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": metadata(
            twin,
            naming.workload_name(twin.name, component),
            naming.component_labels(twin, component),
        ),
        "spec": spec,
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
    if replicas(twin, component) <= 1:
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
