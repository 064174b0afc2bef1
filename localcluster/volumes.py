"""Dynamic PersistentVolumes for the test cluster: the default StorageClass `standard`.

A twin's orchestrator is a StatefulSet with a claim, so the cluster needs a provisioner. The
controller-manager's built-in hostpath provisioner makes root-owned 0750 directories under
/tmp/hostpath_pv, which the non-root Pods of a real node cannot write, and hostPath volumes
ignore fsGroup. This one makes each claim a ``local`` PersistentVolume instead: a directory
under the cluster's workdir (removed with it), pinned to the node its Pod was scheduled to;
the kubelet applies the Pod's fsGroup to local volumes, as it does on any production cluster.

The class binds on first use (``WaitForFirstConsumer``, as Kubernetes advises for local
volumes): the scheduler picks the Pod's node first, with every node's room in view, and
names it on the claim (``volume.kubernetes.io/selected-node``). Binding at once instead
pinned every volume to one node before any Pod existed, so with the bench's extra kwok
nodes every orchestrator still had to fit on that one node: at 1,000 twins 362 of them
stayed Pending ("didn't match PersistentVolume's node affinity", "Insufficient cpu").

It runs as one process of the cluster (``python -m localcluster.volumes``), polling the API:
a Pending claim of the class with a selected node gets a directory and a PersistentVolume
pre-bound to it (the controller-manager's binder completes the binding); a Released volume
of ours loses its directory and is deleted (reclaimPolicy Delete). Polling, not watching,
keeps it trivially restartable; a second's delay is nothing next to a Pod's start.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim

CLASS = "standard"
PROVISIONER = "phoenixtwin.io/local-dir"
STORAGE_CLASS: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": CLASS,
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": PROVISIONER,
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}
# Set by the scheduler on a claim of a WaitForFirstConsumer class: the node its Pod will run on.
SELECTED_NODE = "volume.kubernetes.io/selected-node"
log = logging.getLogger("localcluster.volumes")


def volume_dir(root: Path, claim_uid: str) -> Path:
    return root / f"pvc-{claim_uid}"


def persistent_volume(claim: dict[str, Any], path: Path, node_name: str) -> dict[str, Any]:
    """The local PersistentVolume for ``claim``, pre-bound to it (pure)."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "storageClassName": CLASS,
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node_name],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def selected_node(claim: dict[str, Any]) -> str | None:
    """The node the scheduler picked for the claim's first Pod (None: no Pod scheduled yet)."""
    node = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
    return str(node) if node else None


def wants_volume(claim: dict[str, Any]) -> bool:
    spec = claim.get("spec", {})
    return (
        spec.get("storageClassName") == CLASS
        and not spec.get("volumeName")
        and claim.get("status", {}).get("phase", "Pending") == "Pending"
        and not claim["metadata"].get("deletionTimestamp")
        and selected_node(claim) is not None
    )


def reconcile(client: Client, root: Path) -> None:
    """One pass: provision every claim waiting for one, delete every released volume of ours."""
    volumes: dict[str, dict[str, Any]] = {}
    for listed in client.list(PersistentVolume):
        body = listed.to_dict()
        volumes[body["metadata"]["name"]] = body
    for item in client.list(PersistentVolumeClaim, namespace="*"):
        claim = item.to_dict()
        name = f"pvc-{claim['metadata']['uid']}"
        node = selected_node(claim)
        if not wants_volume(claim) or node is None or name in volumes:
            continue
        path = volume_dir(root, claim["metadata"]["uid"])
        # Root-owned 0755: the kubelet hands it to the Pod's fsGroup (g+rwx, setgid).
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        volume = PersistentVolume.from_dict(persistent_volume(claim, path, node))
        try:
            client.create(volume)  # type: ignore[call-overload]
        except ApiError as err:
            if err.status.code != 409:
                raise
        log.info("provisioned %s for %s/%s at %s", name,
                 claim["metadata"]["namespace"], claim["metadata"]["name"], path)  # fmt: skip
    for pv_name, pv in volumes.items():
        ours = pv["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
        if ours != PROVISIONER or pv.get("status", {}).get("phase") != "Released":
            continue
        path = Path(pv["spec"]["local"]["path"])
        if path.parent == root:
            shutil.rmtree(path, ignore_errors=True)
        try:
            client.delete(PersistentVolume, pv_name)
        except ApiError as err:
            if err.status.code != 404:
                raise
        log.info("deleted released %s and %s", pv_name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="localcluster.volumes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="where volume directories go")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    client = Client(config=KubeConfig.from_file(args.kubeconfig), field_manager=PROVISIONER)
    while True:
        try:
            reconcile(client, args.root.resolve())
        except Exception:
            log.exception("reconcile failed; retrying")
        time.sleep(args.interval)


if __name__ == "__main__":
    raise SystemExit(main())
