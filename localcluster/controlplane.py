"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler: argv and start order."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localcluster import procs
from localcluster.state import ClusterState

# Started in this order, stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@dataclass(frozen=True)
class ControlPlaneSpec:
    """How the control plane is addressed: loopback only (kwok) or reachable by a real node."""

    bind_ip: str = "127.0.0.1"
    service_cidr: str = "10.96.0.0/16"
    cluster_cidr: str = "10.244.0.0/16"
    # A real node's Pods use the `kubernetes` Service, so its endpoints must be maintained (and
    # be the non-loopback address the API server listens on); the apiserver also dials kubelets.
    real_node: bool = False


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    kcm: int
    scheduler: int

    @classmethod
    def pick(cls, bind_ip: str) -> Ports:
        return cls(
            etcd=procs.free_port(),
            etcd_peer=procs.free_port(),
            apiserver=procs.free_port(bind_ip),
            kcm=procs.free_port(),
            scheduler=procs.free_port(),
        )


def argv(workdir: Path, bindir: Path, spec: ControlPlaneSpec, ports: Ports) -> dict[str, list[str]]:
    pki, kc = workdir / "pki", str(workdir / "kubeconfig")
    server = f"https://{spec.bind_ip}:{ports.apiserver}"
    etcd_url, peer_url = f"http://127.0.0.1:{ports.etcd}", f"http://127.0.0.1:{ports.etcd_peer}"
    if spec.real_node:
        endpoints = [f"--advertise-address={spec.bind_ip}", "--endpoint-reconciler-type=lease"]
        kubelet = [
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
        node_ipam = [
            "--allocate-node-cidrs=true",
            f"--service-cluster-ip-range={spec.service_cidr}",
            "--node-cidr-mask-size=24",
        ]
    else:
        # Loopback is not a valid Endpoints address; with no reconciler the `kubernetes`
        # Service simply has no endpoints (nothing in-cluster dials it: kwok runs no Pods).
        endpoints = ["--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
        kubelet, node_ipam = [], []
    common = [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
        "--v=1",
    ]
    return {
        "etcd": [
            str(bindir / "etcd"),
            "--name=node0",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=node0={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--auto-compaction-retention=1",
            "--log-level=warn",
            "--listen-metrics-urls=",
            "--quota-backend-bytes=4294967296",
        ],
        "kube-apiserver": [
            str(bindir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={spec.bind_ip}",
            f"--secure-port={ports.apiserver}",
            *endpoints,
            *kubelet,
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={spec.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            "--v=1",
        ],
        "kube-controller-manager": [
            str(bindir / "kube-controller-manager"),
            *common,
            f"--secure-port={ports.kcm}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=false",
            "--controllers=*",
            f"--cluster-cidr={spec.cluster_cidr}",
            *node_ipam,
        ],
        "kube-scheduler": [
            str(bindir / "kube-scheduler"),
            *common,
            f"--secure-port={ports.scheduler}",
        ],
    }


def start(
    state: ClusterState,
    spec: ControlPlaneSpec,
    ports: Ports,
    running: dict[str, subprocess.Popen[bytes]],
    timeout: float,
) -> None:
    """Start the four components in order, each awaited on its health endpoint."""
    workdir, bindir = Path(state.workdir), Path(state.bindir)
    pki, logdir = workdir / "pki", workdir / "logs"
    commands = argv(workdir, bindir, spec, ports)

    def launch(name: str) -> None:
        running[name] = procs.spawn(name, commands[name], logdir)
        state.pids[name] = running[name].pid
        state.save()

    launch("etcd")
    procs.wait("etcd", lambda: procs.port_open(ports.etcd), timeout, running, logdir)
    launch("kube-apiserver")
    procs.wait(
        "kube-apiserver /readyz",
        lambda: procs.https_ok(f"{state.server}/readyz", pki),
        timeout,
        running,
        logdir,
    )
    launch("kube-controller-manager")
    launch("kube-scheduler")
    for name, port in (("kube-controller-manager", ports.kcm), ("kube-scheduler", ports.scheduler)):
        url = f"https://127.0.0.1:{port}/healthz"
        procs.wait(f"{name} /healthz", functools.partial(procs.https_ok, url, None), timeout,
                   running, logdir)  # fmt: skip
