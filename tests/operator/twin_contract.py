"""A rendered twin seen from inside its Pods: each process's settings, files, listeners and peers.

The contract test builds every component's own settings class from exactly what
the operator renders for its container (the env ConfigMap through ``envFrom``,
``env`` entries and their Secret references, the mounted Secrets, ConfigMaps and
volumes, materialised under a temporary root), then follows every upstream
address the process would dial: to a sibling container over loopback, to a
sibling Service and the container behind its target port, or out of the twin,
and asks the rendered NetworkPolicies whether that connection is allowed, with
Kubernetes' own semantics (a pod selected by no policy of a direction is open in
that direction; otherwise some rule of some selecting policy must match).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from phoenix_common.settings import CommonSettings
from phoenix_gateway.settings import GatewaySettings
from phoenix_gateway.telemetry.settings import TelemetrySettings
from phoenix_memory.settings import MemorySettings
from phoenix_operator.api import Component
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_tools.settings import ToolsSettings

Manifest = dict[str, Any]
NAMESPACE_NAME = "kubernetes.io/metadata.name"
PUBLIC_IP = "203.0.113.7"  # stands for any address outside the cluster (TEST-NET-3)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ANY_ADDRESS = {"0.0.0.0", "::"}  # what a listener reachable through a Service binds


@dataclass(frozen=True)
class Upstream:
    """An address a process dials, as its settings hold it."""

    setting: str
    url: str
    default_port: int


@dataclass(frozen=True)
class Mount:
    path: str  # inside the container
    source: str  # emptyDir | secret | configMap | claim
    read_only: bool
    local: Path  # where the test materialised it


@dataclass
class Process:
    """One container: its settings as the component builds them, and what it mounts."""

    component: Component
    container: str
    settings: CommonSettings | TelemetrySettings
    mounts: list[Mount]
    ports: dict[str, int]  # container port name -> number

    def mount_of(self, path: Path) -> Mount | None:
        """The mount holding ``path`` (a materialised path), if any."""
        for mount in sorted(self.mounts, key=lambda m: -len(str(m.local))):
            if path == mount.local or mount.local in path.parents:
                return mount
        return None


@dataclass
class PodView:
    component: Component
    labels: dict[str, str]
    processes: list[Process] = field(default_factory=list)


def listeners(settings: CommonSettings | TelemetrySettings) -> list[tuple[str, int]]:
    """(host, port) each component's process binds, read from its own settings."""
    if isinstance(settings, GatewaySettings | TelemetrySettings):
        return [(settings.host, settings.port)]
    if isinstance(settings, OrchestratorSettings):
        return [(settings.http_host, settings.http_port)]
    if isinstance(settings, MemorySettings | ToolsSettings):
        return [(settings.grpc_host, settings.grpc_port)]
    raise AssertionError(f"no listener known for {type(settings).__name__}")


def upstreams(settings: CommonSettings | TelemetrySettings) -> list[Upstream]:
    """Every address a process dials, from its own settings (only those it uses)."""
    if isinstance(settings, GatewaySettings):
        found = [
            Upstream("ORCHESTRATOR_URL", settings.orchestrator_url, 80),
            Upstream("TELEMETRY_URL", settings.telemetry_url, 80),
        ]
        if settings.jwt_jwks_url:
            found.append(Upstream("GATEWAY_JWT_JWKS_URL", settings.jwt_jwks_url, 443))
        return found
    if isinstance(settings, OrchestratorSettings):
        found = [
            Upstream("MEMORY_GRPC_ADDR", settings.memory_grpc_addr, 80),
            Upstream("TOOLS_GRPC_ADDR", settings.tools_grpc_addr, 80),
        ]
        if settings.uses_llm:
            found.append(Upstream("OPENROUTER_URL", settings.openrouter_url, 443))
        return found
    if isinstance(settings, MemorySettings):
        found = []
        if settings.backend == "qdrant":
            found.append(Upstream("QDRANT_URL", str(settings.qdrant_url), 6334))
        if settings.embedding_provider == "openai" and settings.embedding_url is not None:
            found.append(Upstream("EMBEDDING_URL", str(settings.embedding_url), 443))
        return found
    if isinstance(settings, ToolsSettings):
        # The validator strips the scheme: host:port is what the gRPC channel dials.
        return [Upstream("MEMORY_GRPC_ADDR", f"http://{settings.memory_grpc_addr}", 80)]
    return []


# ----------------------------------------------------------------------------- the pod's view


def _decoded(secret: Manifest) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


class Rendering:
    """The children of one twin, indexed; user Secrets stand beside them (values invented)."""

    def __init__(
        self,
        namespace: str,
        children: list[Manifest],
        user_secrets: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.namespace = namespace
        self.by_key = {(m["kind"], m["metadata"]["name"]): m for m in children}
        self.secrets: dict[str, Mapping[str, str]] = dict(user_secrets)
        for (kind, name), manifest in self.by_key.items():
            if kind == "Secret":
                self.secrets[name] = _decoded(manifest)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for (k, _), m in self.by_key.items() if k == kind]

    def configmap(self, name: str) -> dict[str, str]:
        found = self.by_key.get(("ConfigMap", name))
        assert found is not None, f"ConfigMap {name} is referenced but not rendered"
        return dict(found["data"])

    def secret_value(self, name: str, key: str) -> str:
        assert name in self.secrets, f"Secret {name} is referenced but neither rendered nor given"
        assert key in self.secrets[name], f"Secret {name} has no key {key}"
        return self.secrets[name][key]

    def workloads(self) -> list[Manifest]:
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")


def _materialise(
    rendering: Rendering, spec: Manifest, claims: list[Manifest], mount: Manifest, root: Path
) -> Mount:
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    claim_names = {c["metadata"]["name"] for c in claims}
    local = root / mount["mountPath"].lstrip("/")
    local.mkdir(parents=True, exist_ok=True)
    name = mount["name"]
    if name in claim_names:
        return Mount(mount["mountPath"], "claim", bool(mount.get("readOnly")), local)
    assert name in volumes, f"volumeMount {name} names no volume"
    volume = volumes[name]
    if "emptyDir" in volume:
        source = "emptyDir"
    elif "secret" in volume:
        source = "secret"
        secret = volume["secret"]["secretName"]
        items = volume["secret"].get("items") or [
            {"key": k, "path": k} for k in rendering.secrets.get(secret, {})
        ]
        for item in items:
            (local / item["path"]).write_text(rendering.secret_value(secret, item["key"]))
    elif "configMap" in volume:
        source = "configMap"
        for key, value in rendering.configmap(volume["configMap"]["name"]).items():
            (local / key).write_text(value)
    else:
        raise AssertionError(f"volume {name}: unexpected source {sorted(volume)}")
    return Mount(mount["mountPath"], source, bool(mount.get("readOnly")), local)


def _environment(rendering: Rendering, container: Manifest, mounts: list[Mount]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(rendering.configmap(source["configMapRef"]["name"]))
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = rendering.secret_value(ref["name"], ref["key"])
    # A path under a mount becomes the materialised path, so the component's own code reads it.
    for key, value in env.items():
        for mount in sorted(mounts, key=lambda m: -len(m.path)):
            if value == mount.path or value.startswith(mount.path.rstrip("/") + "/"):
                env[key] = str(mount.local / value[len(mount.path) :].lstrip("/"))
                break
    return env


@contextlib.contextmanager
def only_environment(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """The process environment is exactly ``env``, in an empty directory (no stray .env)."""
    saved, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(env)
    cwd.mkdir(parents=True, exist_ok=True)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(saved_cwd)


def load_settings(component: Component, container: Manifest) -> CommonSettings | TelemetrySettings:
    """The container's settings, built the way its process builds them (from os.environ)."""
    if component == "gateway" and container.get("args") == ["telemetry"]:
        return TelemetrySettings.from_environment()
    classes: dict[str, type[CommonSettings]] = {
        "gateway": GatewaySettings,
        "orchestrator": OrchestratorSettings,
        "memory": MemorySettings,
        "tools": ToolsSettings,
    }
    return classes[component]()


def pods(rendering: Rendering, root: Path) -> dict[Component, PodView]:
    """Each component's pod with its processes' settings built the way the component builds them."""
    views: dict[Component, PodView] = {}
    for workload in rendering.workloads():
        template = workload["spec"]["template"]
        component: Component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        view = PodView(component, dict(template["metadata"]["labels"]))
        claims = workload["spec"].get("volumeClaimTemplates") or []
        for container in template["spec"]["containers"]:
            base = root / component / container["name"]
            mounts = [
                _materialise(rendering, template["spec"], claims, m, base / "fs")
                for m in container.get("volumeMounts") or []
            ]
            env = _environment(rendering, container, mounts)
            with only_environment(env, base / "cwd"):
                settings = load_settings(component, container)
            ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
            view.processes.append(Process(component, container["name"], settings, mounts, ports))
        views[component] = view
    return views


# ----------------------------------------------------------------------------- NetworkPolicy


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace and labels) or an address outside the twin."""

    namespace: str | None
    labels: Mapping[str, str]
    ip: str


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except") or []
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {NAMESPACE_NAME: other.namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], other.labels)


def allowed(
    policies: list[Manifest],
    direction: str,
    pod: Endpoint,
    other: Endpoint,
    *,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether ``pod`` may send to (Egress) or receive from (Ingress) ``other`` on ``port``."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"].get("policyTypes", [])
        and _selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key) or []
            if peers and not any(
                _peer_matches(p, policy["metadata"]["namespace"], other) for p in peers
            ):
                continue
            ports = rule.get("ports") or []
            for candidate in ports:
                assert isinstance(candidate.get("port"), int | None), "named ports: not modelled"
            if not ports or any(
                p.get("protocol", "TCP") == protocol and p.get("port") in (None, port)
                for p in ports
            ):
                return True
    return False


def destination(host: str, namespace: str) -> Endpoint:
    """Where a host outside the twin's Services lands, as NetworkPolicy sees it."""
    with contextlib.suppress(ValueError):
        return Endpoint(None, {}, str(ipaddress.ip_address(host)))
    labels = host.split(".")
    if len(labels) >= 3 and labels[2] == "svc":
        return Endpoint(labels[1], {}, "10.244.200.1")
    if len(labels) == 1:
        return Endpoint(namespace, {}, "10.244.200.1")
    return Endpoint(None, {}, PUBLIC_IP)


def url_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    scheme_port = {"http": 80, "https": 443}.get(parts.scheme, default_port)
    port = parts.port or (default_port if default_port not in (80, 443) else scheme_port)
    return parts.hostname or "", port
