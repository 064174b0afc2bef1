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

It runs as one process of the cluster (``python -m localcluster.volumes``), watching claims
and volumes: a Pending claim of the class with a selected node gets a directory and a
PersistentVolume pre-bound to it (the controller-manager's binder completes the binding); a
Released volume of ours loses its directory and is deleted (reclaimPolicy Delete). Every
step is idempotent, so a restarted provisioner (or a re-established watch, which starts with
every existing object) simply goes over everything again; a full pass every ``--resync``
seconds retries what failed. It used to list every claim and volume each second instead: at
1,000 twins that cost the API server, etcd and this process about 0.2 of this machine's two
cores, continuously, while the operator bench measured the same cores.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.types import OnErrorAction, OnErrorResult

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
Handler = Callable[[Client, Path, dict[str, Any]], None]
Kind = type[PersistentVolumeClaim] | type[PersistentVolume]


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


def provision(client: Client, root: Path, claim: dict[str, Any]) -> None:
    """A local PersistentVolume for ``claim`` if it waits for one (idempotent)."""
    node = selected_node(claim)
    if not wants_volume(claim) or node is None:
        return
    path = volume_dir(root, claim["metadata"]["uid"])
    # Root-owned 0755: the kubelet hands it to the Pod's fsGroup (g+rwx, setgid).
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    volume = persistent_volume(claim, path, node)
    try:
        client.create(PersistentVolume.from_dict(volume))  # type: ignore[call-overload]
    except ApiError as err:
        if err.status.code == 409:  # provisioned already (an earlier event or pass)
            return
        raise
    log.info("provisioned %s for %s/%s at %s", volume["metadata"]["name"],
             claim["metadata"]["namespace"], claim["metadata"]["name"], path)  # fmt: skip


def release(client: Client, root: Path, volume: dict[str, Any]) -> None:
    """Delete ``volume`` and its directory if it is ours and Released (idempotent)."""
    ours = volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
    if ours != PROVISIONER or volume.get("status", {}).get("phase") != "Released":
        return
    path = Path(volume["spec"]["local"]["path"])
    if path.parent == root:
        shutil.rmtree(path, ignore_errors=True)
    try:
        client.delete(PersistentVolume, volume["metadata"]["name"])
    except ApiError as err:
        if err.status.code != 404:
            raise
    log.info("deleted released %s and %s", volume["metadata"]["name"], path)


def reconcile(client: Client, root: Path) -> None:
    """One full pass: provision every claim waiting for one, delete every released volume."""
    for item in client.list(PersistentVolumeClaim, namespace="*"):
        provision(client, root, item.to_dict())
    for listed in client.list(PersistentVolume):
        release(client, root, listed.to_dict())


def _retry_watch(err: Exception, count: int) -> OnErrorResult:
    log.warning("watch failed (%s); watching again", err)
    return OnErrorResult(OnErrorAction.RETRY, sleep=min(10.0, 0.5 * count))


def follow(client: Client, root: Path, kind: Kind, handle: Handler) -> None:
    """Hand every version of every object of ``kind`` to ``handle``, for ever.

    lightkube's watch without a resourceVersion first sends every existing object, and
    after a 410 Gone starts over the same way, so nothing is missed across reconnects.
    A failed ``handle`` is logged; the periodic full pass (``reconcile``) retries it.
    """
    while True:
        try:
            events: Iterator[tuple[str, PersistentVolumeClaim | PersistentVolume]] = (
                client.watch(PersistentVolumeClaim, namespace="*", on_error=_retry_watch)
                if kind is PersistentVolumeClaim
                else client.watch(PersistentVolume, on_error=_retry_watch)
            )
            for _type, obj in events:
                try:
                    handle(client, root, obj.to_dict())
                except Exception:
                    log.exception("a %s event failed; the next full pass retries", kind.__name__)
        except Exception:  # not an HTTP error (those retry inside the watch): start over
            log.exception("watching %s failed; watching again", kind.__name__)
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="localcluster.volumes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="where volume directories go")
    parser.add_argument(
        "--resync", type=float, default=30.0, help="seconds between full passes (a safety net)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    root = args.root.resolve()

    def client() -> Client:  # one per thread: each thread has its own connections
        return Client(config=KubeConfig.from_file(args.kubeconfig), field_manager=PROVISIONER)

    for kind, handle in ((PersistentVolumeClaim, provision), (PersistentVolume, release)):
        threading.Thread(
            target=follow, args=(client(), root, kind, handle), name=kind.__name__, daemon=True
        ).start()
    resync = client()
    while True:
        time.sleep(args.resync)
        try:
            reconcile(resync, root)
        except Exception:
            log.exception("full pass failed; retrying")


if __name__ == "__main__":
    raise SystemExit(main())
