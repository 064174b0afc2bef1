"""A twin's memory on the embedded (Qdrant Edge) path, in a real Pod: no Qdrant server at all.

Runs whether or not a Qdrant server binary exists (it needs only the memory image), so the
embedded path is proven on every run, and it is what remains proven where the server cannot
be built (test_twin_realnode.py then fails loudly). The Pod is the memory service as a twin
runs it (non-root, read-only root, gRPC probe, TWIN_NAMESPACE/TWIN_NAME), with
MEMORY_BACKEND=edge and its shards on a claim of the default StorageClass: memories committed
through gRPC are found by meaning (the image's real embedding model), lie on the volume, and
are all still found by a new Pod on the same claim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from tests.e2e.kube import KubeCluster
from tests.e2e.realnode import PORTS, component_pod, port_forward, wait_ready
from tests.e2e.twin_cluster import local_state

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(900)]
TWIN = "edge"
DATA = "/var/lib/phoenix"
MEMORIES = {
    "reactor": "Incident 4711: the phoenix reactor overheated at dawn and was shut down",
    "garden": "The tomatoes in the north garden need watering every other evening",
    "invoice": "Invoice 2024-117 from Acme was paid by bank transfer on March 3rd",
}


@pytest.fixture(scope="module")
def loaded(real_cluster: KubeCluster) -> KubeCluster:
    from localcluster import images

    state = local_state(real_cluster)
    if state is not None:
        images.load(state, ["memory"])  # the memory image only: no qdrant image needed
    return real_cluster


def _edge_memory_pod(namespace: str) -> dict[str, Any]:
    pod = component_pod("memory", namespace)
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env |= {
        "MEMORY_BACKEND": "edge",
        "MEMORY_DATA_DIR": f"{DATA}/memory",
        "TWIN_NAMESPACE": namespace,
        "TWIN_NAME": TWIN,
    }
    container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    container["volumeMounts"].append({"name": "data", "mountPath": DATA})
    pod["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "data"}})
    return pod


def _stub(channel: grpc.Channel) -> Any:
    stub_class: Any = memory_pb2_grpc.MemoryServiceStub  # the generated stub is untyped
    return stub_class(channel)


def _query(stub: Any, text: str) -> list[Any]:
    reply = stub.QueryMemory(
        memory_pb2.QueryMemoryRequest(query=text, namespace="default", twin_id=TWIN, top_k=3),
        timeout=120,
    )
    return list(reply.results)


def test_memories_on_the_embedded_edge_path_are_found_and_outlive_the_pod(
    loaded: KubeCluster, real_namespace: str
) -> None:
    kube, ns = loaded, real_namespace
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube.apply(claim, _edge_memory_pod(ns))
    seconds = wait_ready(kube, ns, "memory", timeout=600)
    print(f"edge memory Pod: kubectl apply -> Ready in {seconds:.1f}s")

    ids: dict[str, str] = {}
    with (
        port_forward(kube, ns, "pod/memory", PORTS["memory"]) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = _stub(channel)
        for topic, content in MEMORIES.items():
            reply = stub.CommitMemory(
                memory_pb2.CommitMemoryRequest(
                    content=content,
                    namespace="default",
                    twin_id=TWIN,
                    memory_type="Episodic",
                    risk_level="Low",
                ),
                timeout=120,
            )
            assert reply.success, reply.error_message
            ids[topic] = reply.memory_id
        # Found by meaning, not by shared words: real embeddings rank the right memory first.
        first = _query(stub, "a nuclear plant got too hot in the morning")
        assert [r.id for r in first][:1] == [ids["reactor"]], [(r.id, r.similarity) for r in first]
        assert {r.id for r in first} == set(ids.values()), first

    # The shards lie on the claim's volume, written by the engine inside the Pod.
    volume = kube.get("pvc", "data", "-n", ns)["spec"]["volumeName"]
    if local_state(kube) is not None:
        local = Path(kube.get("pv", volume)["spec"]["local"]["path"]) / "memory"
        written = [p for p in local.rglob("*") if p.is_file()]
        assert written, f"nothing of the edge shards under {local}"

    kube.kubectl("delete", "pod", "memory", "-n", ns, "--wait=true", timeout=180)
    kube.apply(_edge_memory_pod(ns))
    wait_ready(kube, ns, "memory", timeout=600)
    with (
        port_forward(kube, ns, "pod/memory", PORTS["memory"]) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = _stub(channel)
        again = {
            topic: _query(stub, text)
            for topic, text in {
                "reactor": "a nuclear plant got too hot in the morning",
                "garden": "which vegetables must be watered",
                "invoice": "was the Acme bill settled",
            }.items()
        }
    for topic, results in again.items():
        assert results, f"{topic}: nothing found after the Pod was replaced"
        assert results[0].id == ids[topic], (topic, [(r.id, r.content) for r in results])
        assert results[0].content == MEMORIES[topic]
