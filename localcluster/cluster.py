"""Start and stop a whole cluster: the control plane plus a kwok node or a real one."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from localcluster import controlplane, fakenode, nodens, pki, procs, volumes
from localcluster import node as realnode
from localcluster.addons import KUBE_ROUTER_USER
from localcluster.state import (
    DEFAULT_DIR,
    REPO,
    SLOTS,
    Addresses,
    ClusterState,
    Names,
    NodeKind,
    instance_id,
    preferred_slot,
)

CONTROL_PLANE_SCRIPT = REPO / "scripts" / "build-control-plane.sh"


def ensure_binaries() -> Path:
    """Build (or find in the version-keyed cache) the control-plane binaries; return their dir."""
    result = subprocess.run(
        ["bash", str(CONTROL_PLANE_SCRIPT)], check=False, stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise procs.ClusterError(
            f"{CONTROL_PLANE_SCRIPT} failed with exit code {result.returncode}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def node_from_env(default: NodeKind = "kwok") -> NodeKind:
    """``NODE=real`` or ``NODE=kwok`` from the environment (what `make cluster-up` passes)."""
    value = os.environ.get("NODE", default)
    if value not in ("kwok", "real"):
        raise procs.ClusterError(f"NODE must be 'kwok' or 'real', not {value!r}")
    return value  # type: ignore[return-value]


def _free_slot(instance: str) -> int:
    first = preferred_slot(instance)
    for step in range(SLOTS):
        slot = (first + step) % SLOTS
        if not nodens.slot_in_use(Addresses(slot=slot).host_ip):
            return slot
    raise procs.ClusterError("every address slot of 10.112.0.0/12 is in use")


def _identities(state: ClusterState) -> list[pki.Identity]:
    if state.node != "real":
        return pki.control_plane_identities([], [])
    addr, name = state.addresses, state.names.node_name
    service_names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    return [
        *pki.control_plane_identities([addr.host_ip, addr.kubernetes_service_ip], service_names),
        pki.Identity(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", groups=("system:masters",)
        ),
        pki.Identity(
            "kubelet-serving",
            f"system:node:{name}",
            groups=("system:nodes",),
            server_ips=(addr.node_ip,),
            server_dns=(name,),
        ),
        pki.Identity("kubelet", f"system:node:{name}", groups=("system:nodes",)),
        pki.Identity("kube-proxy", "system:kube-proxy"),
        pki.Identity("kube-router", KUBE_ROUTER_USER),
    ]


def start(
    workdir: Path = DEFAULT_DIR,
    bindir: Path | None = None,
    timeout: float = 120,
    node: NodeKind | None = None,
) -> ClusterState:
    """Start a cluster in ``workdir``; return once its Node is Ready and SAs exist.

    A real node also waits for CoreDNS. Whatever was started is stopped again on failure.
    """
    kind = node or node_from_env()
    existing = ClusterState.load(workdir)
    if existing and any(procs.alive(pid) for pid in existing.pids.values()):
        raise procs.ClusterError(
            f"a cluster is already running from {workdir}; run `make cluster-down`"
        )
    if existing:
        stop(workdir)  # a crashed run's leftovers
    if kind == "real":
        realnode.check_host()
    bindir = bindir or ensure_binaries()
    node_bindir = realnode.ensure_binaries() if kind == "real" else None
    for sub in ("etcd", "logs", "pki", "apiserver-certs", "node", "volumes"):
        path = workdir / sub
        if sub != "logs" and path.exists():
            subprocess.run(["rm", "-rf", str(path)], check=True)
        path.mkdir(parents=True, exist_ok=True)
    instance = instance_id(workdir)
    state = ClusterState(
        workdir=str(workdir),
        kubeconfig=str(workdir / "kubeconfig"),
        server="",
        bindir=str(bindir),
        node=kind,
        instance=instance,
        node_bindir=str(node_bindir) if node_bindir else None,
        slot=_free_slot(instance) if kind == "real" else None,
    )
    state.save()
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        spec = controlplane.ControlPlaneSpec()
        if kind == "real":
            holder = nodens.start_holder(state, timeout)
            running["node-namespaces"] = holder
            addr = state.addresses
            spec = controlplane.ControlPlaneSpec(
                bind_ip=addr.host_ip,
                service_cidr=addr.service_cidr,
                cluster_cidr=addr.pod_cidr,
                real_node=True,
            )
        ports = controlplane.Ports.pick(spec.bind_ip)
        state.server = f"https://{spec.bind_ip}:{ports.apiserver}"
        pkidir = workdir / "pki"
        pki.write_pki(pkidir, _identities(state))
        pki.write_kubeconfig(Path(state.kubeconfig), state.server, pkidir)
        for user in ("kubelet", "kube-proxy", "kube-router"):
            if kind == "real":
                pki.write_kubeconfig(
                    workdir / "node" / f"{user}.kubeconfig", state.server, pkidir, user
                )
        state.save()
        controlplane.start(state, spec, ports, running, timeout)
        if kind == "real":
            if node_bindir is None:
                raise ValueError("a real node needs node_bindir (scripts/build-node.sh)")
            realnode.start(state, node_bindir, running, timeout)
        else:
            fakenode.start(state, running, timeout)
        _start_provisioner(state, running)
        procs.wait(
            "ServiceAccount default/default (created by kube-controller-manager)",
            lambda: procs.kubectl(bindir, Path(state.kubeconfig), "get", "sa", "default"),
            timeout,
            running,
            workdir / "logs",
        )
    except BaseException:
        stop(workdir)
        raise
    return state


def _start_provisioner(state: ClusterState, running: dict[str, subprocess.Popen[bytes]]) -> None:
    """The default StorageClass and its provisioner (localcluster.volumes), for PVCs."""
    workdir = Path(state.workdir)
    procs.kubectl(Path(state.bindir), Path(state.kubeconfig), "apply", "-f", "-",
                  stdin=json.dumps(volumes.STORAGE_CLASS))  # fmt: skip
    argv = [sys.executable, "-m", "localcluster.volumes", f"--kubeconfig={state.kubeconfig}",
            f"--root={workdir / 'volumes'}"]  # fmt: skip
    running["volumes"] = procs.spawn(
        "volumes", argv, workdir / "logs", env={"PYTHONPATH": str(REPO)}
    )
    state.pids["volumes"] = running["volumes"].pid
    state.save()


def stop(workdir: Path = DEFAULT_DIR, timeout: float = 15) -> list[str]:
    """Stop everything (reverse start order); return the names that needed SIGKILL.

    Also what cleans up after a crashed run: the node's cgroup is killed and removed even if
    the processes recorded in state.json are already gone.
    """
    state = ClusterState.load(workdir)
    if state is None:
        return []
    killed = []
    for name in reversed(list(state.pids)):
        if procs.stop_group(state.pids[name], timeout):
            killed.append(name)
    if state.node == "real" and state.instance:
        nodens.kill_cgroup(Names(instance=state.instance).cgroup)
        if state.holder_pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(state.holder_pid, os.WNOHANG)
        _wait_gone(state)
    # The claims' data (the node's mounts of it went with its mount namespace).
    subprocess.run(["rm", "-rf", str(Path(workdir, "volumes"))], check=False)
    Path(workdir, "state.json").unlink(missing_ok=True)
    return killed


def _wait_gone(state: ClusterState, timeout: float = 30) -> None:
    # The kernel frees a network namespace (and the host's end of its veth) asynchronously.
    deadline = time.monotonic() + timeout
    while nodens.host_leftovers(state) and time.monotonic() < deadline:
        time.sleep(0.2)


def leftovers(state: ClusterState) -> list[str]:
    """What of a stopped cluster is still on the host (empty when teardown was complete)."""
    found = [f"process {name} ({pid})" for name, pid in state.pids.items() if procs.alive(pid)]
    if state.node == "real":
        found += nodens.host_leftovers(state)
    return found
