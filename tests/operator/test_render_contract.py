"""The contract between the operator's rendering and the components' own settings.

Snapshot tests of the renderer check fields; they cannot tell that tools dial
127.0.0.1 for memory, that the gateway's telemetry upstream is not in its Pod,
or that a policy blocks the embedding endpoint. Here each component's own
settings class is built from what the operator renders for its container, and
every address it would dial is followed to a listener (a sibling container over
loopback, or a sibling Service, its target port and the process behind it) or
out of the twin, through the rendered NetworkPolicies on both ends.
(twin_contract.py has the machinery.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from phoenix_gateway.auth import Authenticator
from phoenix_gateway.settings import GatewaySettings
from phoenix_operator import render
from phoenix_operator.api import COMPONENTS, Component, Twin
from phoenix_operator.render import RenderContext
from phoenix_orchestrator.approvals.db import Database
from phoenix_orchestrator.approvals.store import ApprovalStore
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_tools.policy_store import PolicyStore
from phoenix_tools.settings import ToolsSettings
from tests.operator.twin_contract import (
    ANY_ADDRESS,
    LOOPBACK,
    Endpoint,
    PodView,
    Process,
    Rendering,
    Upstream,
    allowed,
    destination,
    listeners,
    pods,
    upstreams,
    url_port,
)

Views = dict[Component, PodView]
USER_SECRETS = {
    "llm-key": {"token": "sk-or-0123456789"},
    "emb-key": {"key": "sk-emb-0123456789"},
    "own-gateway-key": {"k": "users-own-gateway-key-0123456789"},
}
SPECS: dict[str, dict[str, Any]] = {
    "default": {},
    "in-cluster embedder, LLM, JWT, replicas": {
        "gateway": {
            "replicas": 3,
            "auth": {
                "jwt": {
                    "issuer": "https://id.example",
                    "audience": "twins",
                    "jwksUrl": "https://id.example/jwks",
                }
            },
        },
        "memory": {
            "replicas": 2,
            "embedding": {
                "provider": "openai",
                "url": "http://embedder.ml.svc.cluster.local:8080/v1",
                "apiKeySecretRef": {"name": "emb-key", "key": "key"},
            },
        },
        "llm": {"provider": "openrouter", "apiKeySecretRef": {"name": "llm-key", "key": "token"}},
        "approvals": {"rules": [{"tool": "command_exec", "action": "auto", "programs": ["ls"]}]},
    },
    "public embedder on its own port, external telemetry, cwd, own key": {
        "gateway": {
            "telemetryUrl": "http://telemetry.obs.svc:8183",
            "auth": {"apiKeySecretRef": {"name": "own-gateway-key", "key": "k"}},
        },
        "memory": {
            "qdrant": {"url": "https://qdrant.example:6334"},
            "embedding": {
                "provider": "openai",
                "url": "https://emb.example:8443/v1",
                "apiKeySecretRef": {"name": "emb-key", "key": "key"},
            },
        },
        "tools": {"sandbox": "cwd", "policy": {"allowed": ["ls", "vector_query"]}},
    },
}


def rendered(twin: Twin, ctx: RenderContext) -> Rendering:
    generated = {
        s.name: f"generated-{s.name}-0123456789abcdef" for s in render.generated_secrets(twin)
    }
    return Rendering(twin.namespace, render.children(twin, ctx, generated), USER_SECRETS)


@pytest.fixture(params=sorted(SPECS), ids=lambda name: name.replace(" ", "-"))
def twin(request: pytest.FixtureRequest, twin_factory: Callable[..., Twin]) -> Twin:
    return twin_factory(SPECS[request.param])


@pytest.fixture
def rendering(twin: Twin, ctx: RenderContext) -> Rendering:
    return rendered(twin, ctx)


@pytest.fixture
def views(rendering: Rendering, tmp_path: Path) -> Views:
    return pods(rendering, tmp_path)


def pod_endpoint(rendering: Rendering, view: PodView) -> Endpoint:
    return Endpoint(rendering.namespace, view.labels, "10.244.0.10")


def sibling_service(rendering: Rendering, host: str) -> dict[str, Any] | None:
    """The twin's Service a host names: ``svc``, ``svc.<ns>``, ``svc.<ns>.svc[.cluster.local]``."""
    name, _, rest = host.partition(".")
    qualified = {"", rendering.namespace, f"{rendering.namespace}.svc"}
    qualified.add(f"{rendering.namespace}.svc.cluster.local")
    if rest not in qualified:
        return None
    return rendering.by_key.get(("Service", name))


def follow(
    rendering: Rendering, views: Views, caller: PodView, process: Process, upstream: Upstream
) -> list[str]:
    """Why ``process`` could not reach ``upstream`` (empty: it can)."""
    where = f"{process.component}/{process.container} {upstream.setting}={upstream.url}"
    host, port = url_port(upstream.url, upstream.default_port)
    policies = rendering.of_kind("NetworkPolicy")
    me = pod_endpoint(rendering, caller)
    if host in LOOPBACK:
        served = [
            other.container
            for other in caller.processes
            if other is not process
            and any(p == port and h in ANY_ADDRESS | LOOPBACK for h, p in listeners(other.settings))
        ]
        return [] if served else [f"{where}: no other container of the pod listens on {port}"]
    service = sibling_service(rendering, host)
    if service is None:
        if host.split(".")[0].startswith(f"{caller.labels['phoenixtwin.io/twin']}-"):
            return [f"{where}: names no Service of the twin"]
        out = destination(host, rendering.namespace)
        ok = allowed(policies, "Egress", me, out, port=port)
        return [] if ok else [f"{where}: egress to {out} port {port} is not allowed"]
    problems = []
    ports = {p["port"]: p for p in service["spec"]["ports"]}
    if port not in ports:
        return [f"{where}: Service {host} exposes {sorted(ports)}, not {port}"]
    target = ports[port]["targetPort"]
    callees = [
        v
        for v in views.values()
        if all(v.labels.get(k) == val for k, val in service["spec"]["selector"].items())
    ]
    if len(callees) != 1:
        return [f"{where}: Service {host} selects {len(callees)} components"]
    callee = callees[0]
    behind = [
        p
        for p in callee.processes
        if target in (*p.ports.values(), *p.ports)
        and any(
            h in ANY_ADDRESS and port_ == _number(p, target) for h, port_ in listeners(p.settings)
        )
    ]
    if not behind:
        problems.append(f"{where}: nothing in {callee.component} listens on {target} for all")
    target_port = _number(behind[0], target) if behind else 0
    peer = pod_endpoint(rendering, callee)
    if not allowed(policies, "Egress", me, peer, port=target_port):
        problems.append(f"{where}: egress to {callee.component}:{target_port} is not allowed")
    if not allowed(policies, "Ingress", peer, me, port=target_port):
        problems.append(f"{where}: {callee.component} ingress from {caller.component} is refused")
    return problems


def _number(process: Process, target: int | str) -> int:
    return process.ports[target] if isinstance(target, str) else target


def test_every_upstream_reaches_a_listener_through_the_policies(
    rendering: Rendering, views: Views
) -> None:
    problems = []
    dialled = 0
    for view in views.values():
        for process in view.processes:
            for upstream in upstreams(process.settings):
                dialled += 1
                problems += follow(rendering, views, view, process, upstream)
    assert dialled >= 6  # gateway 2, orchestrator 2, memory 1, tools 1 at least
    assert problems == []


def test_every_pod_resolves_names(rendering: Rendering, views: Views) -> None:
    dns = Endpoint("kube-system", {"k8s-app": "kube-dns"}, "10.244.0.53")
    policies = rendering.of_kind("NetworkPolicy")
    for view in views.values():
        for protocol in ("UDP", "TCP"):
            me = pod_endpoint(rendering, view)
            assert allowed(policies, "Egress", me, dns, port=53, protocol=protocol)


def test_every_service_port_reaches_a_process_listening_for_all(
    rendering: Rendering, views: Views
) -> None:
    for component in COMPONENTS:
        service = rendering.by_key[("Service", f"alice-{component}")]
        for port in service["spec"]["ports"]:
            found = [
                p
                for p in views[component].processes
                for host, number in listeners(p.settings)
                if number == port["targetPort"] and host in ANY_ADDRESS
            ]
            if port["name"] == "serve":
                assert found, f"{component}: nothing serves Service port {port['port']}"


def test_only_the_gateway_is_reachable_from_another_twin(
    rendering: Rendering, views: Views
) -> None:
    """A pod of another twin in another namespace, with the same labels but its own twin name."""
    policies = rendering.of_kind("NetworkPolicy")
    for component, view in views.items():
        stranger_labels = {**view.labels, "phoenixtwin.io/twin": "mallory"}
        for caller in views.values():
            stranger = Endpoint("team-b", {**caller.labels, **stranger_labels}, "10.244.9.9")
            port = listeners(view.processes[0].settings)[0][1]
            me = pod_endpoint(rendering, view)
            reachable = allowed(policies, "Ingress", me, stranger, port=port)
            assert reachable == (component == "gateway"), component


def test_gateway_replicas_accept_each_others_console_sessions(
    rendering: Rendering, tmp_path: Path
) -> None:
    """Two Pods of one gateway, each built from the rendering, with the mounted keys."""
    first = pods(rendering, tmp_path / "first")["gateway"].processes[0].settings
    second = pods(rendering, tmp_path / "second")["gateway"].processes[0].settings
    assert isinstance(first, GatewaySettings)
    assert isinstance(second, GatewaySettings)
    token = Authenticator.from_settings(first).sessions.issue("alice")
    assert Authenticator.from_settings(second).sessions.twin_for(token) == "alice"


def test_the_gateway_knows_the_twins_key_by_the_twins_name(
    rendering: Rendering, views: Views
) -> None:
    settings = views["gateway"].processes[0].settings
    assert isinstance(settings, GatewaySettings)
    keys = Authenticator.from_settings(settings).api_keys
    assert keys is not None
    key = (
        rendering.secrets.get("alice-gateway-api-key", {}).get("api-key")
        or USER_SECRETS["own-gateway-key"]["k"]
    )
    assert keys.twin_for(key) == "alice"


async def test_pending_approvals_are_written_to_the_orchestrators_claim(
    views: Views,
) -> None:
    process = views["orchestrator"].processes[0]
    settings = process.settings
    assert isinstance(settings, OrchestratorSettings)
    mount = process.mount_of(settings.database_path)
    assert mount is not None, f"{settings.state_dir} is on the read-only root filesystem"
    assert (mount.source, mount.read_only) == ("claim", False), (
        f"approvals in {mount.path} ({mount.source}) do not survive a rescheduled Pod"
    )
    db = Database(settings.database_path)  # the orchestrator's own store, for real
    try:
        assert await ApprovalStore(db).pending("s-1", twin_id="alice") == []
    finally:
        db.close()
    assert settings.database_path.exists()


def test_tools_read_the_mounted_policy_and_work_in_a_writable_sandbox(
    views: Views,
) -> None:
    process = views["tools"].processes[0]
    settings = process.settings
    assert isinstance(settings, ToolsSettings)
    assert settings.policy_file is not None
    PolicyStore(settings.policy_file).current()  # the tools service's own loader
    sandbox = process.mount_of(settings.sandbox_dir)
    assert sandbox is not None
    assert not sandbox.read_only
    # The service creates SANDBOX_DIR and chmods it (workdir.prepare_root): only the owner
    # may, and a volume's root belongs to the kubelet, so it must lie strictly inside one.
    assert sandbox.local in settings.sandbox_dir.parents, (sandbox.local, settings.sandbox_dir)
