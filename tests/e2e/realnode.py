"""Helpers for tests on a real node: Pods of our images, port-forwards, in-Pod probes."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from localcluster import free_port
from localcluster.images import image_name
from phoenix_operator.render.common import bwrap_container_security, bwrap_pod_security
from tests.e2e.kube import KubeCluster, wait_for

# How each component starts in a Pod on its own: the probe the operator renders for it and the
# environment that makes it self-sufficient (no Qdrant server, no LLM, no upstreams).
PORTS = {"gateway": 8181, "orchestrator": 8182, "memory": 50052, "tools": 50054, "operator": 8080}
ENV = {
    # The keys directory the operator mounts from the twin's Secret (see gateway_keys).
    "gateway": {"GATEWAY_API_KEYS_FILE": "/etc/phoenix/gateway-keys"},
    "orchestrator": {"LLM_PROVIDER": "mock", "ORCHESTRATOR_STATE_DIR": "/tmp/orchestrator"},
    "memory": {"MEMORY_BACKEND": "edge", "MEMORY_DATA_DIR": "/tmp/memory"},
    # bubblewrap, under the security context the operator renders for it (below): the service
    # serves only with a usable sandbox (test_realnode_sandbox runs commands in it).
    "tools": {"TOOLS_USE_BWRAP": "true", "SANDBOX_DIR": "/tmp/sandbox"},
    # Serves the test's namespace only (added per Pod); reaches the API server in-cluster,
    # through the `kubernetes` Service.
    "operator": {"PHOENIX_QDRANT_LOCAL_PATH": "/tmp/qdrant"},
}


def probe(component: str) -> dict[str, Any]:
    port = PORTS[component]
    if component in ("memory", "tools"):
        return {"grpc": {"port": port}, "periodSeconds": 2}
    if component == "operator":
        return {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 2}
    return {"tcpSocket": {"port": port}, "periodSeconds": 2}


def gateway_keys(namespace: str) -> dict[str, Any]:
    """The Secret the gateway Pod mounts: twin id `smoke` with a throwaway key."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gateway-keys", "namespace": namespace},
        "stringData": {"smoke": secrets.token_urlsafe(24)},
    }


def component_pod(component: str, namespace: str, **labels: str) -> dict[str, Any]:
    """A Pod running ``component``'s image as the operator runs it: non-root, read-only root."""
    env = dict(ENV[component])
    if component == "operator":
        env["PHOENIX_OPERATOR_NAMESPACES"] = namespace
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if component == "gateway":
        mounts.append({"name": "keys", "mountPath": env["GATEWAY_API_KEYS_FILE"], "readOnly": True})
        volumes.append({"name": "keys", "secret": {"secretName": "gateway-keys"}})
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": component,
            "namespace": namespace,
            "labels": {"app": component, **labels},
        },
        "spec": {
            "serviceAccountName": "operator" if component == "operator" else "default",
            "automountServiceAccountToken": component == "operator",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": component,
                    "image": image_name(component),
                    "imagePullPolicy": "Never",
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "ports": [{"containerPort": PORTS[component]}],
                    "readinessProbe": probe(component),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }
    if component == "tools":
        spec = pod["spec"]
        spec["securityContext"] = bwrap_pod_security()
        spec["hostUsers"] = False
        spec["containers"][0]["securityContext"] = bwrap_container_security()
    return pod


def pod_ready(kube: KubeCluster, namespace: str, name: str) -> bool:
    pod = kube.get("pod", name, "-n", namespace)
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def wait_ready(kube: KubeCluster, namespace: str, name: str, timeout: float = 300) -> float:
    """Seconds until the Pod is Ready; on timeout, fail with its status and recent events."""
    started = time.monotonic()
    try:
        wait_for(
            lambda: pod_ready(kube, namespace, name), what=f"Pod {name} Ready", timeout=timeout
        )
    except AssertionError as err:
        status = kube.get("pod", name, "-n", namespace).get("status", {})
        events = kube.kubectl("get", "events", "-n", namespace, check=False).stdout[-3000:]
        raise AssertionError(f"{err}\nstatus: {json.dumps(status)[:3000]}\n{events}") from None
    return time.monotonic() - started


def exec_in(
    kube: KubeCluster, namespace: str, pod: str, *argv: str
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl("exec", "-n", namespace, pod, "--", *argv, check=False, timeout=60)


def python_in(
    kube: KubeCluster, namespace: str, pod: str, code: str
) -> subprocess.CompletedProcess[str]:
    return exec_in(kube, namespace, pod, "python", "-c", code)


def connect_code(host: str, port: int, timeout: float = 3) -> str:
    """Python that exits 0 if a TCP connection to host:port succeeds, 1 otherwise."""
    return (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout={timeout}).close()\n"
        "except OSError as err:\n"
        "    print(err); sys.exit(1)\n"
    )


@contextlib.contextmanager
def port_forward(kube: KubeCluster, namespace: str, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` to ``target``'s ``port`` on a free local port."""
    local = free_port()
    proc = subprocess.Popen(
        [kube.kubectl_path, f"--kubeconfig={kube.kubeconfig}", "port-forward", "-n", namespace,
         target, f"{local}:{port}", "--address=127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.match(r"Forwarding from 127\.0\.0\.1:\d+", line), f"port-forward said: {line}"
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=10)
