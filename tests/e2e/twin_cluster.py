"""The whole product on a real node: a Qdrant server, the chart's operator, twins of our images.

Fixtures of tests/e2e/test_twin_realnode.py live here so the test module reads as the scenario:
images loaded into the node's containerd, a Qdrant server (our qdrant image) in namespace
``qdrant`` where the chart's default ``qdrant.url`` points, ``helm install`` of the chart with
our operator image, and helpers to reach a twin's gateway through its Service.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcluster import images, procs
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.realnode import port_forward
from tests.helm.chart import CHART, helm

QDRANT_NAMESPACE = "qdrant"  # the chart's default qdrant.url: http://qdrant.qdrant.svc:6334
QDRANT_HTTP, QDRANT_GRPC = 6333, 6334
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
LOCKED_DOWN = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def create_namespace(kube: KubeCluster, name: str, **labels: str) -> str:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }
    )
    wait_for(
        lambda: kube.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        what=f"ServiceAccount {name}/default",
    )
    return name


def pss(level: str) -> dict[str, str]:
    """Namespace labels enforcing one Pod Security Standard level (of this Kubernetes)."""
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "v1.34",
    }


def qdrant_objects() -> list[dict[str, Any]]:
    """A one-replica Qdrant server of our qdrant image, REST 6333 and gRPC 6334."""
    labels = {"app.kubernetes.io/name": "qdrant"}
    container = {
        "name": "qdrant",
        "image": images.image_name("qdrant"),
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": QDRANT_HTTP},
            {"name": "grpc", "containerPort": QDRANT_GRPC},
        ],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": QDRANT_HTTP}, "periodSeconds": 2},
        "securityContext": LOCKED_DOWN,
        # Storage, snapshots and its init marker under its home: the root stays read-only.
        "volumeMounts": [{"name": "data", "mountPath": "/qdrant"}],
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "qdrant", "namespace": QDRANT_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": RESTRICTED,
                        "containers": [container],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "qdrant", "namespace": QDRANT_NAMESPACE, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [
                    {"name": "http", "port": QDRANT_HTTP, "targetPort": QDRANT_HTTP},
                    {"name": "grpc", "port": QDRANT_GRPC, "targetPort": QDRANT_GRPC},
                ],
            },
        },
    ]


STORAGE_CLASS = "phoenix-local"


def ensure_storage(kube: KubeCluster, volumes: int) -> None:
    """A default StorageClass with ``volumes`` free local PersistentVolumes, unless one exists.

    A twin's orchestrator claims a volume from the default class. The real node has no
    dynamic provisioner that suits a non-root Pod (kube-controller-manager's hostpath one makes
    root-owned 0750 directories and the kubelet applies no fsGroup to hostPath), so the test
    lays out ``local`` volumes (the kubelet chowns those to the Pod's fsGroup) in the
    cluster's workdir, which the node's mount namespace shares.
    """
    classes = kube.get("storageclasses")["items"]
    default = "storageclass.kubernetes.io/is-default-class"
    has_default = any(c["metadata"].get("annotations", {}).get(default) == "true" for c in classes)
    if has_default and not any(c["metadata"]["name"] == STORAGE_CLASS for c in classes):
        return
    state = local_state(kube)
    assert state is not None, "an external cluster brings its own default StorageClass"
    (node,) = kube.get("nodes")["items"]
    hostname = node["metadata"]["labels"]["kubernetes.io/hostname"]
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS, "annotations": {default: "true"}},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    ]
    for index in range(volumes):
        path = Path(state.workdir) / "volumes" / f"pv{index}"
        path.mkdir(parents=True, exist_ok=True)
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{STORAGE_CLASS}-{index}"},
                "spec": {
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "local": {"path": str(path)},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": [hostname],
                                        }
                                    ]
                                }
                            ]
                        }
                    },
                },
            }
        )
    kube.apply(*objects)


def rollout(kube: KubeCluster, namespace: str, workload: str, timeout: int = 600) -> None:
    kube.kubectl(
        "rollout", "status", workload, "-n", namespace, f"--timeout={timeout}s",
        timeout=timeout + 30,
    )  # fmt: skip


@dataclass(frozen=True)
class Release:
    """One `helm install` of the chart with our operator image."""

    kube: KubeCluster
    name: str
    namespace: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-phoenixtwin"

    def helm(self, *args: str, check: bool = True) -> Any:
        return helm(*args, "--kubeconfig", self.kube.kubeconfig, check=check, timeout=900)

    def values(self, tag: str) -> list[str]:
        prefix = images.image_prefix()
        sets = {
            "image.repository": f"{prefix}operator",
            "image.tag": tag,
            "operator.twinImages.prefix": prefix,
            "operator.twinImages.tag": tag,
            "operator.resyncSeconds": "30",
        }
        return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]

    def install(self, tag: str) -> None:
        self.helm(
            "install", self.name, str(CHART), "--namespace", self.namespace,
            *self.values(tag), "--wait", "--timeout", "600s",
        )  # fmt: skip

    def upgrade(self, tag: str) -> None:
        self.helm(
            "upgrade", self.name, str(CHART), "--namespace", self.namespace,
            *self.values(tag), "--wait", "--timeout", "600s",
        )  # fmt: skip

    def operator_pods(self) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/name=phoenixtwin"
        pods = self.kube.get("pods", "-n", self.namespace, "-l", selector)["items"]
        return [
            p
            for p in pods
            if p["metadata"]["labels"].get("app.kubernetes.io/component") != "helm-test"
        ]

    def logs(self) -> str:
        return str(
            self.kube.kubectl(
                "logs", f"deployment/{self.fullname}", "-n", self.namespace, "--tail=-1",
                check=False,
            ).stdout
        )  # fmt: skip


def twin_ready(kube: KubeCluster, namespace: str, name: str) -> bool:
    result = kube.kubectl("get", "ptwin", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    body = json.loads(result.stdout)
    generation = body["metadata"]["generation"]
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == "Ready":
            return bool(
                item.get("status") == "True" and item.get("observedGeneration") == generation
            )
    return False


def twin_pods(kube: KubeCluster, namespace: str, twin: str) -> dict[str, dict[str, Any]]:
    """The twin's running (not terminating) Pods by component."""
    pods = kube.get("pods", "-n", namespace, "-l", f"phoenixtwin.io/twin={twin}")["items"]
    return {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


def pod_is_ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def api_key(kube: KubeCluster, namespace: str, twin: str) -> str:
    secret = kube.get("secret", f"{twin}-gateway-api-key", "-n", namespace)
    return base64.b64decode(secret["data"]["api-key"]).decode()


@contextlib.contextmanager
def gateway(kube: KubeCluster, namespace: str, twin: str) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` forwarded to the twin's gateway Service."""
    with port_forward(kube, namespace, f"svc/{twin}-gateway", 8181) as port:
        yield f"http://127.0.0.1:{port}"


def pod_memory(kube: KubeCluster) -> dict[str, dict[str, int]]:
    """RSS and working set of every Pod (bytes), from the kubelet's summary API."""
    (node,) = kube.get("nodes")["items"]
    raw = kube.kubectl(
        "get", "--raw", f"/api/v1/nodes/{node['metadata']['name']}/proxy/stats/summary"
    ).stdout
    out = {}
    for pod in json.loads(raw).get("pods", []):
        ref = pod["podRef"]
        memory = pod.get("memory") or {}
        out[f"{ref['namespace']}/{ref['name']}"] = {
            "rss": int(memory.get("rssBytes", 0)),
            "working_set": int(memory.get("workingSetBytes", 0)),
        }
    return out


def local_state(kube: KubeCluster) -> Any:
    """The localcluster state of ``kube``: its own, or that of a `make cluster-up NODE=real`
    cluster reached through KUBECONFIG (its workdir holds the kubeconfig); else None."""
    import localcluster

    workdir = Path(kube.workdir) if kube.workdir else Path(kube.kubeconfig).parent
    state = localcluster.ClusterState.load(workdir)
    return state if state is not None and state.node == "real" else None


def require_qdrant_binary(kube: KubeCluster) -> None:
    """Fail, never skip, where the qdrant image cannot be built (no Qdrant server binary).

    Every twin here keeps its memories in the Qdrant server Pod (the chart's default
    ``qdrant.url``), so without that image nothing of the scenario can run; a skip would
    report a green run that proved nothing. The embedded (Edge) path needs no server and is
    proven in a Pod either way (test_twin_edge_memory_realnode.py).
    """
    if local_state(kube) is None:
        return  # an external cluster: its images (Qdrant's too) are loaded by whoever made it
    try:
        images.qdrant_binary()
    except procs.ClusterError as err:
        missing = str(err)
    else:
        return
    pytest.fail(
        f"NO QDRANT SERVER FOR THE REAL-NODE TWINS: {missing}. Every test of this module "
        "needs the Qdrant server Pod and fails here; the embedded (Edge) memory path is "
        "proven without it by tests/e2e/test_twin_edge_memory_realnode.py.",
        pytrace=False,
    )


def load_images(kube: KubeCluster) -> None:
    """Our five images and the Qdrant server's, built or cached, in the node's containerd."""
    state = local_state(kube)
    if state is None:
        return  # an external cluster: its images are loaded by whoever made it
    started = time.monotonic()
    images.load(state, list(images.ALL_IMAGES))
    print(f"images built or cached and imported in {time.monotonic() - started:.1f}s")


# Python run inside a Pod: for each "host:port" argument, whether its name resolves and whether
# a TCP connection is accepted within 3 s; one JSON object on stdout.
PROBE = """
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        address = socket.gethostbyname(host)
    except OSError as err:
        out[target] = "no-dns: " + str(err)
        continue
    try:
        socket.create_connection((address, int(port)), timeout=3).close()
        out[target] = "open"
    except OSError as err:
        out[target] = "blocked: " + (str(err) or type(err).__name__)
print(json.dumps(out))
"""


def probe_from(
    kube: KubeCluster, namespace: str, pod: str, targets: list[str], container: str | None = None
) -> dict[str, str]:
    """What ``pod`` sees of each ``host:port``: "open", "blocked: ..." or "no-dns: ..."."""
    chosen = ["-c", container] if container else []
    result = kube.kubectl(
        "exec", "-n", namespace, pod, *chosen, "--", "python", "-c", PROBE, *targets,
        check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"probe in {namespace}/{pod} failed: {result.stderr}"
    found: dict[str, str] = json.loads(result.stdout)
    return found


def retag(kube: KubeCluster, components: list[str], tag: str) -> None:
    """Give the images of ``components`` a second tag in the node's containerd."""
    from localcluster import node

    state = local_state(kube)
    assert state is not None, "retagging needs the local real node's containerd"
    assert state.node_bindir is not None
    ctr = [
        str(Path(state.node_bindir) / "ctr"),
        f"--address={node.containerd_socket(state)}",
        "--namespace=k8s.io",
    ]
    for component in components:
        source = images.image_name(component)
        target = source.rsplit(":", 1)[0] + f":{tag}"
        subprocess.run([*ctr, "images", "rm", target], capture_output=True, check=False)
        done = subprocess.run(
            [*ctr, "images", "tag", source, target], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"ctr images tag {source} {target}: {done.stderr}"
        # A tag is an image record of its own: pin it too (node.import_image says why).
        pinned = subprocess.run(
            [*ctr, "images", "label", target, node.PINNED_LABEL],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert pinned.returncode == 0, f"ctr images label {target}: {pinned.stderr}"


# A chat-completions server playing the LLM (the real one is out of reach): "run: <cmd>" asks
# for command_exec of <cmd>, "recall: <text>" for the vector_query tool (run by the tools Pod,
# which queries the memory Pod), "search"/"find"/"memory" for a memory query (the original's
# rule); anything else is answered, and so is a step's result (the agent loop's "Result of
# step N" message, which itself mentions "memory search"). It runs in a Pod of our gateway image.
FAKE_LLM = """
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        if user.startswith("Result of step "):
            # The agent loop reports a step's result and asks for the next action: answer.
            decision = {"action_type": "ActionResponse",
                        "details": {"content": "fake-llm: that was the result."}}
        elif user.startswith("run: "):
            decision = {"action_type": "ActionTool",
                        "details": {"tool_name": "command_exec", "args": {"cmd": user[5:]}}}
        elif user.startswith("recall: "):
            decision = {"action_type": "ActionTool",
                        "details": {"tool_name": "vector_query", "args": {"query": user[8:]}}}
        elif any(word in user.lower() for word in ("search", "find", "memory")):
            decision = {"action_type": "ActionMemory", "details": {"query": user}}
        else:
            decision = {"action_type": "ActionResponse",
                        "details": {"content": "fake-llm heard: " + user}}
        message = {"role": "assistant", "content": json.dumps(decision)}
        reply = json.dumps({"choices": [{"message": message}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


def fake_llm_objects(namespace: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "fake-llm"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "fake-llm", "namespace": namespace},
            "stringData": {"api-key": "not-a-real-key"},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "fake-llm", "namespace": namespace, "labels": labels},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": RESTRICTED,
                "containers": [
                    {
                        "name": "llm",
                        "image": images.image_name("gateway"),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", FAKE_LLM],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                        "securityContext": LOCKED_DOWN,
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "fake-llm", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
    ]
