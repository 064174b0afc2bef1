"""The tools Pod the operator renders runs bubblewrap for real under the kubelet.

Its security context (hostUsers: false, procMount: Unmasked, seccomp Unconfined, no
capabilities, non-root; render/common.py) must let bwrap create its namespaces and mount a fresh
/proc; the service's startup self-test then reports sandbox=bwrap, and a command run through it
sees no network and none of the Pod's files. No feature gate is set on the cluster: on 1.34
UserNamespacesSupport and ProcMountType are on by default, which this test verifies by effect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

import localcluster
from localcluster import images
from phoenix_common.stubs import tools_pb2, tools_pb2_grpc
from phoenix_operator.api import Twin
from phoenix_operator.render import RenderContext, config, workloads
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.realnode import exec_in, port_forward, wait_ready

pytestmark = pytest.mark.realnode
TWIN = "sbx"
# Files every tools Pod has (kubelet mounts, the service's config and venv) that a sandboxed
# command must not see.
POD_FILES = ("/etc/hostname", "/etc/resolv.conf", "/etc/phoenix/tools", "/opt/venv", "/sandbox")


def _rendered(namespace: str) -> list[dict[str, Any]]:
    twin = Twin.from_body(
        {
            "apiVersion": "phoenixtwin.io/v1alpha1",
            "kind": "PhoenixTwin",
            "metadata": {"name": TWIN, "namespace": namespace, "uid": "0" * 8},
            # The probe below runs python3 directly: an interpreter runs only where the
            # twin's policy names it (tools' policy.py), as a user would have to.
            "spec": {"tools": {"policy": {"allowed": ["python3"], "programs": ["python3"]}}},
        }
    )
    ctx = RenderContext(image_prefix=images.image_prefix(), image_tag=images.image_tag())
    objects = [
        workloads.service_account(twin),
        config.env_configmap(twin, "tools", ctx),
        config.tools_policy_configmap(twin),
        workloads.workload(twin, "tools", ctx),
    ]
    for obj in objects:
        # No PhoenixTwin owns them here; a dangling owner would make the GC delete them.
        obj["metadata"].pop("ownerReferences", None)
    return objects


@pytest.fixture(scope="module")
def tools_pod(real_cluster: KubeCluster) -> Iterator[tuple[KubeCluster, str, str]]:
    kube = real_cluster
    if kube.local:
        assert kube.workdir is not None
        state = localcluster.ClusterState.load(Path(kube.workdir))
        assert state is not None
        images.load(state, ["tools"])
    namespace = f"sandbox-{int(time.time())}"
    kube.kubectl("create", "namespace", namespace)
    wait_for(
        lambda: kube.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
        what="the namespace's default ServiceAccount",
    )
    objects = _rendered(namespace)
    kube.apply(*objects)
    selector = ",".join(
        f"{k}={v}" for k, v in objects[-1]["spec"]["selector"]["matchLabels"].items()
    )

    def pod_name() -> str:
        pods = kube.get("pods", "-n", namespace, "-l", selector)["items"]
        return str(pods[0]["metadata"]["name"]) if pods else ""

    wait_for(lambda: bool(pod_name()), what="the tools Deployment's Pod", timeout=60)
    name = pod_name()
    seconds = wait_ready(kube, namespace, name)
    print(f"operator-rendered tools Pod Ready {seconds:.1f}s after creation")
    yield kube, namespace, name
    kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_pod_runs_in_a_user_namespace_with_an_unmasked_proc(
    tools_pod: tuple[KubeCluster, str, str],
) -> None:
    kube, namespace, name = tools_pod
    spec = kube.get("pod", name, "-n", namespace)["spec"]
    assert spec["hostUsers"] is False
    assert spec["containers"][0]["securityContext"]["procMount"] == "Unmasked"
    uid_map = exec_in(kube, namespace, name, "cat", "/proc/self/uid_map")
    assert uid_map.returncode == 0, uid_map.stderr
    inside, outside, count = (int(x) for x in uid_map.stdout.split())
    # Pod uid 0 is a high host uid: a user namespace, not the host's identity map.
    assert (inside, count) == (0, 65536), uid_map.stdout
    assert outside >= 65536, uid_map.stdout
    mounts = exec_in(kube, namespace, name, "cat", "/proc/self/mountinfo").stdout.splitlines()
    over_proc = [m.split()[4] for m in mounts if m.split()[4].startswith("/proc/")]
    assert over_proc == [], f"/proc is still masked: {over_proc}"


def test_health_reports_the_bwrap_sandbox(tools_pod: tuple[KubeCluster, str, str]) -> None:
    kube, namespace, name = tools_pod
    with (
        port_forward(kube, namespace, f"pod/{name}", 50054) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = tools_pb2_grpc.ToolExecutorServiceStub(channel)  # type: ignore[no-untyped-call]
        health = stub.HealthCheck(empty_pb2.Empty(), timeout=20)
    assert health.status == "healthy", health.message
    assert "sandbox=bwrap" in health.message, health.message


def _run_python(kube: KubeCluster, namespace: str, name: str, code: str) -> Any:
    request = tools_pb2.ExecutionRequest(twin_id=TWIN, command="python3", args=["-c", code])
    with (
        port_forward(kube, namespace, f"pod/{name}", 50054) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = tools_pb2_grpc.ToolExecutorServiceStub(channel)  # type: ignore[no-untyped-call]
        return stub.RequestExecution(request, timeout=60)


def test_a_sandboxed_command_sees_no_network_and_no_pod_files(
    tools_pod: tuple[KubeCluster, str, str], real_cluster: KubeCluster
) -> None:
    kube, namespace, name = tools_pod
    for path in POD_FILES:  # the Pod itself has them, so their absence below means something
        assert exec_in(kube, namespace, name, "test", "-e", path).returncode == 0, path
    api = kube.get("service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    code = f"""
import json, os, socket
lines = open("/proc/net/dev").read().splitlines()[2:]
out = {{"interfaces": [line.split(":")[0].strip() for line in lines]}}
try:
    socket.create_connection(({api!r}, 443), timeout=3).close()
    out["connect"] = "connected"
except OSError as err:
    out["connect"] = str(err)
out["visible"] = [p for p in {list(POD_FILES)!r} if os.path.exists(p)]
print(json.dumps(out))
"""
    reply = _run_python(kube, namespace, name, code)
    assert reply.success, f"{reply.message}: {list(reply.stderr_logs)}"
    seen = json.loads("".join(reply.stdout_logs))
    assert seen["interfaces"] == ["lo"], seen
    assert seen["connect"] != "connected"
    assert "unreachable" in seen["connect"].lower(), seen
    assert seen["visible"] == [], f"the sandbox sees Pod files: {seen['visible']}"
