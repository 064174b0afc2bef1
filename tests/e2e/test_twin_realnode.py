"""The product as its users meet it, on a real node: `helm install`, `kubectl apply`, chat.

Everything runs for real: the chart's operator Pod (its ServiceAccount and RBAC), `helm test`'s
Pod, a Qdrant server Pod (our qdrant image) where the chart's default `qdrant.url` points, and
the four Pods of `examples/minimal.yaml` (mock LLM: the orchestrator's deterministic planner)
behind their real probes. A person's path goes through the gateway Service (port-forward) with
the key from the twin's Secret. The tests of this module run in file order and share one twin
(one test adds a second, in another namespace, and deletes it).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from websockets.sync.client import connect

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.realnode import port_forward, wait_ready
from tests.e2e.twin_cluster import (
    LOCKED_DOWN,
    QDRANT_HTTP,
    QDRANT_NAMESPACE,
    RESTRICTED,
    Release,
    api_key,
    create_namespace,
    ensure_storage,
    fake_llm_objects,
    gateway,
    load_images,
    pod_is_ready,
    pod_memory,
    probe_from,
    pss,
    qdrant_objects,
    require_qdrant_binary,
    retag,
    rollout,
    twin_pods,
    twin_ready,
)

# Fixture setup (image builds on a cold cache, helm install, twin Ready) counts against the
# first test that needs it.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(2400)]
REPO = Path(__file__).resolve().parents[2]
MINIMAL = REPO / "examples" / "minimal.yaml"
TWIN = "minimal"
COMPONENTS = ("gateway", "orchestrator", "memory", "tools")
PORT = {"gateway": 8181, "orchestrator": 8182, "memory": 50052, "tools": 50054}


@dataclass
class Twin:
    kube: KubeCluster
    release: Release
    namespace: str
    name: str
    apply_to_ready: float

    def key(self) -> str:
        return api_key(self.kube, self.namespace, self.name)

    def pods(self) -> dict[str, dict[str, Any]]:
        return twin_pods(self.kube, self.namespace, self.name)


def _addresses(twin: Twin) -> dict[str, str]:
    """Each component's Service as ``host:port``, fully qualified (reachable from anywhere)."""
    return {c: f"{TWIN}-{c}.{twin.namespace}.svc.cluster.local:{PORT[c]}" for c in COMPONENTS}


@pytest.fixture(scope="module")
def kube(real_cluster: KubeCluster) -> KubeCluster:
    require_qdrant_binary(real_cluster)
    load_images(real_cluster)
    ensure_storage(real_cluster, volumes=4)  # an orchestrator claim per twin
    return real_cluster


@pytest.fixture(scope="module")
def qdrant(kube: KubeCluster) -> str:
    """The default Qdrant server of every twin here (left running: other modules may share it)."""
    create_namespace(kube, QDRANT_NAMESPACE, **pss("restricted"))
    kube.apply(*qdrant_objects())
    rollout(kube, QDRANT_NAMESPACE, "deployment/qdrant", timeout=300)
    return f"http://qdrant.{QDRANT_NAMESPACE}.svc:6334"


@pytest.fixture(scope="module")
def release(kube: KubeCluster, qdrant: str) -> Iterator[Release]:
    namespace = create_namespace(kube, f"phx-system-{int(time.time())}", **pss("restricted"))
    release = Release(kube, "phx", namespace)
    try:
        started = time.monotonic()
        release.install(images_tag())
        print(f"helm install --wait: {time.monotonic() - started:.1f}s")
        yield release
    finally:
        release.helm("uninstall", release.name, "-n", namespace, "--wait", check=False)
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def images_tag() -> str:
    from localcluster import images

    return images.image_tag()


def _apply_minimal(kube: KubeCluster, release: Release, namespace: str) -> float:
    """`kubectl apply -f examples/minimal.yaml` and `kubectl wait` for Ready: the seconds."""
    started = time.monotonic()
    kube.kubectl("apply", "-n", namespace, "-f", str(MINIMAL))
    waited = kube.kubectl(
        "wait", "--for=condition=Ready", f"ptwin/{TWIN}", "-n", namespace, "--timeout=900s",
        check=False, timeout=960,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if waited.returncode != 0:
        status = kube.kubectl("get", "ptwin", TWIN, "-n", namespace, "-o", "yaml").stdout
        pods = kube.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
        events = kube.kubectl("get", "events", "-n", namespace).stdout[-4000:]
        pytest.fail(f"{waited.stderr}\n{status}\n{pods}\n{events}\n{release.logs()[-4000:]}")
    print(f"kubectl apply -> {namespace}/ptwin/{TWIN} Ready: {elapsed:.1f}s")
    return elapsed


@contextlib.contextmanager
def _minimal_twin(kube: KubeCluster, release: Release, prefix: str) -> Iterator[Twin]:
    """examples/minimal.yaml Ready in a new namespace; deleted with it afterwards."""
    # tools with sandbox bwrap needs `privileged` (docs/operator.md, "Pod Security levels").
    namespace = create_namespace(kube, f"{prefix}-{int(time.time())}", **pss("privileged"))
    try:
        elapsed = _apply_minimal(kube, release, namespace)
        yield Twin(kube, release, namespace, TWIN, elapsed)
    finally:
        # While the operator still runs: it removes the twin's finalizer.
        kube.kubectl("delete", "ptwin", TWIN, "-n", namespace, "--timeout=120s", check=False)
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def twin(kube: KubeCluster, release: Release) -> Iterator[Twin]:
    with _minimal_twin(kube, release, "twin") as twin:
        yield twin


# -- (1) the chart ---------------------------------------------------------------------------


def test_the_operator_pod_runs_under_the_charts_service_account(
    kube: KubeCluster, release: Release
) -> None:
    (pod,) = release.operator_pods()
    deployment = kube.get("deployment", release.fullname, "-n", release.namespace)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert pod["spec"]["serviceAccountName"] == account == release.fullname
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"], status
    assert status["restartCount"] == 0, status
    assert status["imageID"], "the kubelet reports no image: the container did not run"
    # What its token may do is exactly what the chart's ClusterRole grants.
    subject = f"--as=system:serviceaccount:{release.namespace}:{account}"
    can = kube.kubectl("auth", "can-i", "create", "statefulsets.apps", "-A", subject, check=False)
    cannot = kube.kubectl("auth", "can-i", "delete", "nodes", subject, check=False)
    assert can.stdout.strip() == "yes", can.stdout + can.stderr
    assert cannot.stdout.strip() == "no", cannot.stdout + cannot.stderr


def test_helm_test_runs_the_selfcheck_in_a_real_pod(kube: KubeCluster, release: Release) -> None:
    result = release.helm(
        "test", release.name, "-n", release.namespace, "--timeout", "300s", check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    suites = [line for line in result.stdout.splitlines() if line.startswith("Phase:")]
    assert suites, result.stdout
    assert all(line.split()[-1] == "Succeeded" for line in suites), result.stdout
    # The hook Pod is deleted once it succeeds; the kubelet's events show it really ran.
    pod = f"{release.fullname}-test"
    events = kube.get(
        "events", "-n", release.namespace, "--field-selector", f"involvedObject.name={pod}"
    )["items"]
    assert {"Started"} <= {e["reason"] for e in events}, [e["reason"] for e in events]


# -- (2) a twin from examples/minimal.yaml -----------------------------------------------------


def test_the_minimal_twin_becomes_four_ready_pods_on_the_qdrant_server(twin: Twin) -> None:
    pods = twin.pods()
    assert sorted(pods) == sorted(COMPONENTS)
    for component, pod in pods.items():
        assert pod_is_ready(pod), f"{component}: {pod['status']}"
        for status in pod["status"]["containerStatuses"]:
            assert status["ready"], f"{component}/{status['name']}: {status}"
            assert status["imageID"], f"{component}/{status['name']} never ran"
        probes = [c.get("readinessProbe") for c in pod["spec"]["containers"]]
        assert all(probes), f"{component} has a container without a readiness probe"
    memory_env = twin.kube.get("configmap", f"{TWIN}-memory-env", "-n", twin.namespace)["data"]
    assert memory_env["QDRANT_URL"] == f"http://qdrant.{QDRANT_NAMESPACE}.svc:6334"


# -- (3) a person's path through the gateway Service -------------------------------------------


def _frame(message: str, session: str) -> str:
    return json.dumps({"session_id": session, "user_id": TWIN, "message": message})


def _chat(ws: Any, message: str, session: str) -> dict[str, Any]:
    ws.send(_frame(message, session))
    reply: dict[str, Any] = json.loads(ws.recv(timeout=120))
    return reply


def _ws_url(base: str, key: str) -> str:
    return base.replace("http://", "ws://") + f"/ws/chat/{TWIN}?token={key}"


def test_a_websocket_chat_answers_through_the_gateway_service(twin: Twin) -> None:
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        first = _chat(ws, "hello twin", "s-hello")
        timings = []
        for i in range(30):
            started = time.perf_counter()
            reply = _chat(ws, f"ping {i}", "s-hello")
            timings.append((time.perf_counter() - started) * 1000)
            assert reply["content"] == f"I understand you said: 'ping {i}'."
    assert first["type"] == "complete_message", first
    assert first["content"] == "I understand you said: 'hello twin'."
    timings.sort()
    p50, p99 = statistics.median(timings), timings[int(len(timings) * 0.99) - 1]
    print(f"chat round trip through the gateway Service: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def _memory_stub(channel: Any) -> Any:
    stub_class: Any = memory_pb2_grpc.MemoryServiceStub  # the generated stub is untyped
    return stub_class(channel)


def _commit(twin: Twin, content: str) -> str:
    pod = twin.pods()["memory"]["metadata"]["name"]
    with (
        port_forward(twin.kube, twin.namespace, f"pod/{pod}", 50052) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        reply = _memory_stub(channel).CommitMemory(
            memory_pb2.CommitMemoryRequest(
                content=content,
                namespace="default",
                twin_id=TWIN,
                memory_type="Episodic",
                risk_level="High",
            ),
            timeout=120,
        )
    assert reply.success, reply.error_message
    return str(reply.memory_id)


COMMITTED: list[tuple[str, str]] = []


def _qdrant_points(kube: KubeCluster) -> dict[str, int]:
    """Points per collection in the Qdrant server Pod (its REST API, port-forwarded)."""
    with (
        port_forward(kube, QDRANT_NAMESPACE, "svc/qdrant", QDRANT_HTTP) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        names = [c["name"] for c in client.get("/collections").json()["result"]["collections"]]
        return {
            name: int(client.get(f"/collections/{name}").json()["result"]["points_count"] or 0)
            for name in names
        }


def test_an_approved_memory_query_is_answered_by_the_memory_pod(twin: Twin) -> None:
    content = "Incident 4711: phoenix reactor overheated at dawn"
    before = _qdrant_points(twin.kube)
    memory_id = _commit(twin, content)
    COMMITTED.append((memory_id, content))
    after = _qdrant_points(twin.kube)
    # The memory Pod stored it in the Qdrant server Pod (not an embedded engine).
    assert sum(after.values()) == sum(before.values()) + 1, (before, after)
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        request = _chat(ws, "search for the reactor incident", "s-memory")
        command = request["issued_command"]
        assert command["command"] == "show_memory_page", request
        result = _chat(ws, f"[MEMORY_SHOWN] {command['memory_id']}", "s-memory")
    assert result["type"] == "complete_message", result
    assert "phoenix reactor overheated" in result["content"], result
    assert memory_id in result["source_memories"], result


def test_an_approved_tool_runs_and_a_denied_one_does_not(twin: Twin) -> None:
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        request = _chat(ws, "write a file please", "s-tool")
        command = request["issued_command"]
        assert command["command"] == "execute_tool", request
        assert command["tool_name"] == "command_exec", request
        executed = _chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-tool")
        again = _chat(ws, "write another file", "s-deny")
        denied = _chat(ws, "[TOOL_DENIED] command_exec", "s-deny")
        nothing = _chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-deny")
    assert executed["content"].startswith("Tool 'command_exec' executed successfully."), executed
    assert again["issued_command"]["command"] == "execute_tool", again
    assert denied["content"] == "Tool 'command_exec' execution denied.", denied
    assert "executed successfully" not in nothing["content"], nothing


def test_sse_telemetry_events_flow_through_the_gateway_service(twin: Twin) -> None:
    key = twin.key()
    samples = []
    with (
        gateway(twin.kube, twin.namespace, TWIN) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c,
        c.stream("GET", "/v1/telemetry/stream") as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                samples.append(json.loads(line.removeprefix("data:")))
                if len(samples) == 2:
                    break
    assert len(samples) == 2, f"the stream ended after {len(samples)} samples"
    assert all(s["mem_total"] > s["mem_used"] > 0 for s in samples), samples


def test_a_wrong_key_is_refused_by_the_gateway_service(twin: Twin) -> None:
    with gateway(twin.kube, twin.namespace, TWIN) as base:
        refused = httpx.post(
            f"{base}/api/chat",
            json={"message": "hi", "session_id": "s"},
            headers={"X-API-Key": "x" * 32},
            timeout=30,
        )
        accepted = httpx.post(
            f"{base}/api/chat",
            json={"message": "hi", "session_id": "s"},
            headers={"X-API-Key": twin.key()},
            timeout=60,
        )
    assert refused.status_code == 401, refused.text
    assert accepted.status_code == 200, accepted.text


# -- (3b) the LLM speaks: a command chosen by the test runs in bubblewrap in the tools Pod ----


def _patch_twin(twin: Twin, spec: dict[str, Any]) -> None:
    twin.kube.kubectl(
        "patch", "ptwin", TWIN, "-n", twin.namespace, "--type=merge",
        "-p", json.dumps({"spec": spec}),
    )  # fmt: skip
    generation = twin.kube.get("ptwin", TWIN, "-n", twin.namespace)["metadata"]["generation"]
    wait_for(
        lambda: (
            twin_ready(twin.kube, twin.namespace, TWIN)
            and twin.kube.get("ptwin", TWIN, "-n", twin.namespace)["status"].get(
                "observedGeneration"
            )
            == generation
        ),
        what=f"ptwin/{TWIN} Ready at generation {generation}",
        timeout=600,
        interval=2,
    )


SANDBOX_PROBE = (
    "id -u; echo ---; cut -d: -f1 /proc/net/dev | tail -n +3; echo ---; "
    "ls -d /etc/phoenix /opt/venv /etc/hostname /var/run/secrets 2>&1; echo ---; "
    "cat /proc/self/uid_map"
)


def test_an_approved_command_runs_in_bubblewrap_inside_the_tools_pod(twin: Twin) -> None:
    twin.kube.apply(*fake_llm_objects(twin.namespace))
    wait_ready(twin.kube, twin.namespace, "fake-llm")
    _patch_twin(
        twin,
        {
            "llm": {
                "provider": "openai",
                "baseUrl": "http://fake-llm:8080/v1/chat/completions",
                "apiKeySecretRef": {"name": "fake-llm", "key": "api-key"},
            }
        },
    )
    wait_for(
        lambda: all(pod_is_ready(p) for p in twin.pods().values()) and len(twin.pods()) == 4,
        what="the twin's Pods Ready after the LLM change",
        timeout=600,
        interval=2,
    )
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        hello = _chat(ws, "hello llm", "s-llm")
        request = _chat(ws, f"run: {SANDBOX_PROBE}", "s-llm")
        executed = _chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-llm")
        forbidden = _chat(ws, "run: rm -rf /sandbox/anything", "s-llm")
    assert hello["content"] == "fake-llm heard: hello llm", hello
    assert request["issued_command"]["arguments"] == {"cmd": SANDBOX_PROBE}, request
    assert executed["content"].startswith("Tool 'command_exec' executed successfully."), executed
    uid, interfaces, listing, uid_map = executed["content"].split("Output:\n", 1)[1].split("---")
    print(f"sandboxed command output: uid {uid.strip()}, interfaces {interfaces.split()}, "
          f"uid_map {uid_map.split()}")  # fmt: skip
    assert uid.strip() not in ("", "0"), executed["content"]
    assert interfaces.split() == ["lo"], f"the sandbox has a network: {interfaces}"
    for path in ("/etc/phoenix", "/opt/venv", "/etc/hostname", "/var/run/secrets"):
        assert f"{path}': No such file or directory" in listing, listing
    # The tools Pod's own user namespace maps its uid 0 to an unprivileged host uid, so the
    # sandbox's non-zero uid is not root on the host either.
    tools = twin.pods()["tools"]["metadata"]["name"]
    pod_map = twin.kube.kubectl(
        "exec", "-n", twin.namespace, tools, "--", "cat", "/proc/self/uid_map"
    ).stdout.split()
    assert pod_map[0] == "0", pod_map
    assert int(pod_map[1]) >= 65536, f"the tools Pod shares the host's uids: {pod_map}"
    # The orchestrator checks the twin's tools policy (TOOL_POLICY) before asking anyone: a
    # restricted program is refused outright, with no approval to click and nothing run.
    assert forbidden.get("issued_command") is None, forbidden
    assert "Command 'rm' is restricted" in forbidden["content"], forbidden
    assert "executed successfully" not in forbidden["content"], forbidden


def test_an_approved_vector_query_in_the_tools_pod_finds_the_memory_pods_memories(
    twin: Twin,
) -> None:
    """The tools Pod's vector_query tool dials the memory Service (its MEMORY_GRPC_ADDR,
    through the tools->memory NetworkPolicy edge): what it prints are the memory Pod's
    results, one JSON line each, which only the tools service writes."""
    assert COMMITTED, "the memory test committed nothing"
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        # The twin's LLM is the stand-in by now (the bubblewrap test switched it).
        request = _chat(ws, "recall: the reactor incident at dawn", "s-vector")
        command = request["issued_command"]
        assert command["command"] == "execute_tool", request
        assert command["tool_name"] == "vector_query", request
        assert command["arguments"] == {"query": "the reactor incident at dawn"}, request
        executed = _chat(ws, "[TOOL_EXECUTED] vector_query - CONFIRMED", "s-vector")
    assert executed["content"].startswith("Tool 'vector_query' executed successfully."), executed
    output = executed["content"].split("Output:\n", 1)[1]
    results = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    print(f"vector_query from the tools Pod: {[(r['id'], r['similarity']) for r in results]}")
    found = {r["id"]: r for r in results}
    for memory_id, content in COMMITTED:
        assert memory_id in found, f"{memory_id} not among the results: {output}"
        assert found[memory_id]["content"] == content, found[memory_id]
        assert found[memory_id]["similarity"] > 0, found[memory_id]


# -- (4) the NetworkPolicy matrix, by real connections ---------------------------------------


def _sleeper(
    namespace: str, name: str = "outsider", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Pod of our gateway image doing nothing but sleep: a client from another namespace."""
    from localcluster import images

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": RESTRICTED,
            "containers": [
                {
                    "name": "sleeper",
                    "image": images.image_name("gateway"),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "securityContext": LOCKED_DOWN,
                }
            ],
        },
    }


def test_the_network_policy_matrix_holds_for_real_connections(twin: Twin) -> None:
    ns = twin.namespace
    target = _addresses(twin)
    qdrant = f"qdrant.{QDRANT_NAMESPACE}.svc.cluster.local:6334"
    # caller -> {target: expected}; "open" where the twin needs the edge, else blocked.
    expected: dict[str, dict[str, str]] = {
        "gateway": {target["orchestrator"]: "open", target["memory"]: "blocked",
                    target["tools"]: "blocked"},
        "orchestrator": {target["memory"]: "open", target["tools"]: "open",
                         target["gateway"]: "blocked"},
        "tools": {target["memory"]: "open", target["orchestrator"]: "blocked"},
        "memory": {qdrant: "open", target["orchestrator"]: "blocked", target["tools"]: "blocked"},
        "outsider": {target["gateway"]: "open", target["orchestrator"]: "blocked",
                     target["memory"]: "blocked", target["tools"]: "blocked"},
        # Every label of the twin's orchestrator Pod, in another namespace (where no policy
        # selects it): only the twin's own ingress rules stand between it and memory/tools.
        "impostor": {target["memory"]: "blocked", target["tools"]: "blocked"},
    }  # fmt: skip
    outside = create_namespace(twin.kube, f"outsider-{int(time.time())}", **pss("restricted"))
    try:
        pods = twin.pods()
        labels = pods["orchestrator"]["metadata"]["labels"]
        twin.kube.apply(_sleeper(outside), _sleeper(outside, "impostor", labels))
        wait_ready(twin.kube, outside, "outsider")
        wait_ready(twin.kube, outside, "impostor")
        observed: dict[str, dict[str, str]] = {}
        for caller, targets in expected.items():
            if caller in ("outsider", "impostor"):
                where, pod, container = outside, caller, None
            else:
                where, pod = ns, pods[caller]["metadata"]["name"]
                container = caller  # the gateway Pod also runs the telemetry sidecar
            observed[caller] = probe_from(twin.kube, where, pod, list(targets), container)
    finally:
        twin.kube.kubectl("delete", "namespace", outside, "--wait=false", check=False)
    print("NetworkPolicy matrix observed (caller -> target: result):")
    for caller, results in observed.items():
        for where, result in results.items():
            print(f"  {caller:>12} -> {where}: {result}")
    summary = {
        caller: {t: r.split(":")[0] for t, r in results.items()}
        for caller, results in observed.items()
    }
    assert summary == expected


def test_a_second_twin_in_another_namespace_is_walled_off_from_the_first(twin: Twin) -> None:
    """examples/minimal.yaml again in another namespace: the same twin name, so the same Pod
    labels and twin id. Its Pods reach their own siblings but none of the first twin's; each
    gateway refuses the other twin's key; its memory queries never see the first's memories.
    One twin more, not a fleet: it shares the module's cluster, operator and Qdrant server."""
    first = twin
    with _minimal_twin(first.kube, first.release, "second") as second:
        a, b = _addresses(first), _addresses(second)
        expected: dict[str, dict[str, str]] = {
            "gateway": {b["orchestrator"]: "open", a["orchestrator"]: "blocked"},
            "orchestrator": {b["memory"]: "open", b["tools"]: "open",
                             a["orchestrator"]: "blocked", a["memory"]: "blocked",
                             a["tools"]: "blocked"},
            "tools": {b["memory"]: "open", a["memory"]: "blocked", a["tools"]: "blocked",
                      a["orchestrator"]: "blocked"},
            "memory": {a["memory"]: "blocked", a["tools"]: "blocked"},
        }  # fmt: skip
        pods = second.pods()
        observed = {}
        for caller, targets in expected.items():
            pod = pods[caller]["metadata"]["name"]
            observed[caller] = probe_from(second.kube, second.namespace, pod, list(targets), caller)
        keys = {"first": first.key(), "second": second.key()}
        status: dict[tuple[str, str], int] = {}
        for owner in (first, second):
            gateway_of = "first" if owner is first else "second"
            with gateway(owner.kube, owner.namespace, TWIN) as base:
                for key_of, key in keys.items():
                    reply = httpx.post(
                        f"{base}/api/chat",
                        json={"message": "hi", "session_id": "s-keys"},
                        headers={"X-API-Key": key},
                        timeout=60,
                    )
                    status[(gateway_of, key_of)] = reply.status_code
        own_id = _commit(second, "Incident 815: the second twin's own reactor log")
        with (
            gateway(second.kube, second.namespace, TWIN) as base,
            connect(_ws_url(base, keys["second"])) as ws,
        ):
            request = _chat(ws, "search for the reactor incident", "s-second")
            memory_id = request["issued_command"]["memory_id"]
            found = _chat(ws, f"[MEMORY_SHOWN] {memory_id}", "s-second")
    print(f"second twin ({second.namespace}) -> first twin ({first.namespace}):")
    for caller, results in observed.items():
        for where, result in results.items():
            print(f"  {caller:>12} -> {where}: {result}")
    print(f"gateway status by (gateway, key of): {status}")
    summary = {
        caller: {t: r.split(":")[0] for t, r in results.items()}
        for caller, results in observed.items()
    }
    assert summary == expected
    assert keys["first"] != keys["second"]
    assert status == {
        ("first", "first"): 200,
        ("first", "second"): 401,
        ("second", "first"): 401,
        ("second", "second"): 200,
    }
    assert found["source_memories"] == [own_id], found
    assert not {memory_id for memory_id, _ in COMMITTED} & set(found["source_memories"]), found


# -- (5) Pods deleted: approvals and memories survive -----------------------------------------


def _replaced(twin: Twin, component: str) -> None:
    """Delete the component's Pod and wait until a new one (another uid) is Ready."""
    pod = twin.pods()[component]
    old = pod["metadata"]["uid"]
    name = pod["metadata"]["name"]
    twin.kube.kubectl("delete", "pod", name, "-n", twin.namespace, "--wait=true", timeout=180)

    def new_ready() -> bool:
        pod = twin.pods().get(component)
        return pod is not None and pod["metadata"]["uid"] != old and pod_is_ready(pod)

    wait_for(new_ready, what=f"a new {component} Pod Ready", timeout=600, interval=2)
    # Ready is the kubelet's word; kube-proxy (the Service's endpoints) and kube-router (the
    # NetworkPolicy ipsets that name Pod IPs) learn the new Pod's IP after it, asynchronously,
    # and slower while other namespaces churn. A run once saw the gateway answer "orchestrator
    # unavailable" in that window. The test is about what the new Pod holds, so it waits
    # until the component's caller connects to it through the Service.
    caller = {"orchestrator": "gateway", "memory": "orchestrator"}[component]
    target = f"{TWIN}-{component}.{twin.namespace}.svc.cluster.local:{PORT[component]}"

    def reachable() -> bool:
        pod = twin.pods()[caller]["metadata"]["name"]
        seen = probe_from(twin.kube, twin.namespace, pod, [target], caller)
        return seen[target] == "open"

    wait_for(reachable, what=f"{caller} -> the new {component} Pod", timeout=120, interval=2)


def test_a_pending_approval_survives_the_orchestrator_pod(twin: Twin) -> None:
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        # The twin's LLM is the stand-in by now (the bubblewrap test switched it).
        request = _chat(ws, "run: echo survived-the-orchestrator-pod", "s-restart")
    request_id = request["issued_command"]["request_id"]
    before = twin.pods()["orchestrator"]["metadata"]["uid"]
    _replaced(twin, "orchestrator")
    assert twin.pods()["orchestrator"]["metadata"]["uid"] != before
    with (
        gateway(twin.kube, twin.namespace, TWIN) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c,
    ):
        pending = c.get("/api/approvals", params={"session_id": "s-restart"})
        approved = c.post(
            f"/api/approvals/{request_id}/approve",
            json={"session_id": "s-restart", "actor": "e2e"},
        )
    assert pending.status_code == 200, pending.text
    assert [p["request_id"] for p in pending.json()["pending"]] == [request_id]
    assert approved.status_code == 200, approved.text
    assert "executed successfully" in approved.json()["response"], approved.text
    assert "survived-the-orchestrator-pod" in approved.json()["response"], approved.text


def test_every_memory_survives_the_memory_pod(twin: Twin) -> None:
    assert COMMITTED, "the memory test committed nothing"
    _replaced(twin, "memory")
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        request = _chat(ws, "search for the reactor incident again", "s-after")
        result = _chat(ws, f"[MEMORY_SHOWN] {request['issued_command']['memory_id']}", "s-after")
    for memory_id, content in COMMITTED:
        assert memory_id in result["source_memories"], result
        assert content.split(":")[1].strip()[:20] in result["content"], result


# -- figures ------------------------------------------------------------------------------------


def test_report_the_resident_memory_of_each_pod(twin: Twin) -> None:
    wanted = {
        f"{twin.namespace}/{pod['metadata']['name']}": component
        for component, pod in twin.pods().items()
    }
    wanted |= {
        f"{twin.release.namespace}/{p['metadata']['name']}": "operator"
        for p in twin.release.operator_pods()
    }
    found: dict[str, dict[str, int]] = {}

    def measured() -> bool:
        # A Pod started moments ago (memory, after the test above) has no stats yet.
        figures = pod_memory(twin.kube)
        found.clear()
        found.update({name: figures[name] for name in wanted if name in figures})
        return set(found) == set(wanted) and all(m["working_set"] > 0 for m in found.values())

    wait_for(measured, what=f"the kubelet's memory stats of {sorted(wanted)}", timeout=120)
    for name, memory in sorted(found.items(), key=lambda item: wanted[item[0]]):
        print(f"{wanted[name]:>12}: RSS {memory['rss'] / 2**20:.0f} MiB, "
              f"working set {memory['working_set'] / 2**20:.0f} MiB")  # fmt: skip


# -- (6) helm upgrade to a new image tag ----------------------------------------------------------


def test_helm_upgrade_to_a_new_tag_rolls_the_operator_and_the_twin(twin: Twin) -> None:
    new_tag = f"{images_tag()}-upgrade"
    retag(twin.kube, ["operator", *COMPONENTS], new_tag)
    key = twin.key()
    with gateway(twin.kube, twin.namespace, TWIN) as base, connect(_ws_url(base, key)) as ws:
        request = _chat(ws, "run: echo pending-across-the-upgrade", "s-upgrade")
    request_id = request["issued_command"]["request_id"]
    (old_operator,) = twin.release.operator_pods()
    twin.release.upgrade(new_tag)
    (operator,) = twin.release.operator_pods()
    assert operator["metadata"]["uid"] != old_operator["metadata"]["uid"]
    assert operator["spec"]["containers"][0]["image"].endswith(f":{new_tag}")

    def rolled() -> bool:
        pods = twin.pods()
        return len(pods) == 4 and all(
            pod_is_ready(p)
            and all(c["image"].endswith(f":{new_tag}") for c in p["spec"]["containers"])
            for p in pods.values()
        )

    wait_for(rolled, what="every twin Pod on the new tag and Ready", timeout=900, interval=3)
    # The operator reports Ready once it has seen the rolled Pods (a status update later).
    wait_for(
        lambda: twin_ready(twin.kube, twin.namespace, TWIN),
        what=f"ptwin/{TWIN} Ready after the upgrade",
        timeout=300,
        interval=2,
    )
    with (
        gateway(twin.kube, twin.namespace, TWIN) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c,
        connect(_ws_url(base, key)) as ws,
    ):
        approved = c.post(
            f"/api/approvals/{request_id}/approve",
            json={"session_id": "s-upgrade", "actor": "e2e"},
        )
        search = _chat(ws, "search for the reactor incident after the upgrade", "s-up-mem")
        found = _chat(ws, f"[MEMORY_SHOWN] {search['issued_command']['memory_id']}", "s-up-mem")
    assert approved.status_code == 200, approved.text
    assert "pending-across-the-upgrade" in approved.json()["response"], approved.text
    for memory_id, _ in COMMITTED:
        assert memory_id in found["source_memories"], found
