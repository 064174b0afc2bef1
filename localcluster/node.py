"""The real node: containerd + runc, kubelet, kube-proxy, kube-router's NetworkPolicy controller
and CoreDNS, inside the namespaces of ``nodens``.

Selected with ``NODE=real`` (kwok stays the default). Binaries come from scripts/build-node.sh;
the CNI plugins (bridge, host-local, loopback, portmap) from Debian's containernetworking-plugins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from localcluster import addons, nodens, oci, procs
from localcluster.state import REPO, ClusterState

BUILD_SCRIPT = REPO / "scripts" / "build-node.sh"
CNI_BIN_DIR = Path(os.environ.get("CNI_BIN_DIR", "/usr/lib/cni"))
# Host tools the node needs, and the Debian packages that bring them.
HOST_TOOLS = {
    "iptables": "iptables",
    "ipset": "ipset",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "ip": "iproute2",
}
DAEMONS = ("containerd", "kubelet", "kube-proxy", "kube-router")
# Within the container's hard limit of the host (nofile 20000 here, and no CAP_SYS_RESOURCE to
# raise it): runc's setrlimit must never ask for more than the host allows.
POD_NOFILE = 4096


def ensure_binaries() -> Path:
    """Build (or find in the version-keyed cache) the node's binaries; return their dir."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], check=False, stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise procs.ClusterError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def check_host() -> None:
    """Fail with one clear message naming everything a real node lacks on this host."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    problems = []
    if missing:
        problems.append(f"apt-get install {' '.join(missing)}")
    if os.geteuid() != 0:
        problems.append("run as root (the node creates namespaces, cgroups and mounts)")
    if not Path("/proc/sys/net/bridge").exists():
        problems.append("load br_netfilter (modprobe br_netfilter)")
    if problems:
        raise procs.ClusterError("a real node needs: " + "; ".join(problems))


def _dirs(state: ClusterState) -> dict[str, Path]:
    base = Path(state.workdir) / "node"
    return {
        "base": base,
        "containerd-root": base / "containerd" / "root",
        "containerd-state": base / "containerd" / "state",
        "kubelet": base / "kubelet",
        "pod-logs": base / "pod-logs",
        "cni-conf": base / "cni" / "net.d",
        "cni-ipam": base / "cni" / "ipam",
        "images": base / "images",
        "volume-plugins": base / "kubelet-plugins",
    }


def in_node(state: ClusterState, path: Path) -> Path:
    """``path`` (under the node's directory) as the node's daemons reach it (nodens.NODE_VIEW)."""
    return Path(nodens.NODE_VIEW) / path.relative_to(Path(state.workdir) / "node")


def containerd_socket(state: ClusterState) -> Path:
    return Path(state.workdir) / "node" / "containerd.sock"


def _base_spec(path: Path) -> None:
    """containerd's default spec with only the rlimit changed (see POD_NOFILE)."""
    spec = json.loads(path.read_text())
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": POD_NOFILE, "soft": POD_NOFILE}]
    path.write_text(json.dumps(spec, indent=2))


def write_configs(state: ClusterState, bindir: Path) -> dict[str, Path]:
    dirs, names, addr = _dirs(state), state.names, state.addresses
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    base, pki = dirs["base"], Path(state.workdir) / "pki"
    spec_path = base / "base-runtime-spec.json"
    spec_path.write_text(
        subprocess.run(
            [str(bindir / "ctr"), "oci", "spec"], capture_output=True, text=True, check=True
        ).stdout
    )
    _base_spec(spec_path)
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    (base / "containerd.toml").write_text(
        f"""version = 3
root = "{in_node(state, dirs["containerd-root"])}"
state = "{in_node(state, dirs["containerd-state"])}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{containerd_socket(state)}"
[ttrpc]
  address = "{containerd_socket(state)}.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{addons.PAUSE_IMAGE}"
[{runtime}]
  enable_selinux = false
  # Never below containerd's own oom_score_adj: lowering it needs CAP_SYS_RESOURCE, which
  # containers on these hosts lack, and runc then dies before the sandbox starts.
  restrict_oom_score_adj = true
  [{runtime}.containerd]
    default_runtime_name = "runc"
    [{runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      base_runtime_spec = "{spec_path}"
      [{runtime}.containerd.runtimes.runc.options]
        BinaryName = "{bindir / "runc"}"
        SystemdCgroup = false
  [{runtime}.cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{dirs["cni-conf"]}"
"""
    )
    (dirs["cni-conf"] / "10-phoenixtwin.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": names.cni_network,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": names.bridge,
                        "isGateway": True,
                        # No masquerade: nothing leaves the node, and Pods see real sources.
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(dirs["cni-ipam"]),
                            "ranges": [[{"subnet": addr.pod_cidr, "gateway": addr.bridge_ip}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=2,
        )
    )
    kubelet_config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": addr.node_ip,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "containerRuntimeEndpoint": f"unix://{containerd_socket(state)}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{names.cgroup}",
        "clusterDNS": [addr.dns_service_ip],
        "clusterDomain": "cluster.local",
        # Pods with dnsPolicy Default get no host resolver: there is no upstream to reach.
        "resolvConf": "",
        "podLogsDir": str(dirs["pod-logs"]),
        "volumePluginDir": str(dirs["volume-plugins"]),
        "failSwapOn": False,
        # Read the kernel tunables, never write them: nodens shadows them with the values the
        # kubelet wants, so the host's vm.overcommit_memory and kernel.panic* stay as they are.
        "protectKernelDefaults": True,
        # Imported images cannot be pulled again: never garbage-collect them. The disk is the
        # whole machine's (a developer's at 99 % is common): evict only when it is really full,
        # since disk pressure also makes the kubelet delete unused images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "256Mi",
            "imagefs.available": "256Mi",
            "nodefs.inodesFree": "1%",
        },
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "maxPods": 110,
    }
    (base / "kubelet.yaml").write_text(json.dumps(kubelet_config, indent=2))
    kube_proxy_config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(base / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "clusterCIDR": addr.pod_cidr,
        "hostnameOverride": names.node_name,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave the (host-global) conntrack table size and timeouts alone, as kind does.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # NodePorts on 127.0.0.1 would need route_localnet; nothing here uses them.
        "iptables": {"localhostNodePorts": False},
    }
    (base / "kube-proxy.yaml").write_text(json.dumps(kube_proxy_config, indent=2))
    return dirs


def argv(state: ClusterState, bindir: Path, dirs: dict[str, Path]) -> dict[str, list[str]]:
    base, names, addr = dirs["base"], state.names, state.addresses
    return {
        "containerd": [str(bindir / "containerd"), f"--config={base / 'containerd.toml'}"],
        "kubelet": [
            str(bindir / "kubelet"),
            f"--config={base / 'kubelet.yaml'}",
            f"--kubeconfig={base / 'kubelet.kubeconfig'}",
            f"--root-dir={in_node(state, dirs['kubelet'])}",
            f"--hostname-override={names.node_name}",
            f"--node-ip={addr.node_ip}",
            "--v=1",
        ],
        "kube-proxy": [str(bindir / "kube-proxy"), f"--config={base / 'kube-proxy.yaml'}", "--v=1"],
        "kube-router": [
            str(bindir / "kube-router"),
            f"--kubeconfig={base / 'kube-router.kubeconfig'}",
            f"--hostname-override={names.node_name}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--run-loadbalancer=false",
            "--enable-cni=false",
            "--enable-ipv6=false",
            f"--service-cluster-ip-range={addr.service_cidr}",
            "--v=1",
        ],
    }


# containerd's CRI reports images with this label as pinned (labels.PinnedImageLabelKey).
PINNED_LABEL = "io.cri-containerd.pinned=pinned"


def import_image(state: ClusterState, bindir: Path, archive: Path) -> None:
    """Import an image archive into the node's containerd, where the kubelet finds it.

    Pinned: an imported image cannot be pulled again, and the kubelet deletes unused images
    not only past its GC threshold but whenever the disk (the whole machine's) runs short,
    which once removed every twin image between import and first use. The kubelet never
    deletes a pinned image. The layers' compressed copies are dropped once unpacked: the
    snapshots are all a container needs, and they halve the node's share of the disk."""
    result = subprocess.run(
        [
            str(bindir / "ctr"),
            f"--address={containerd_socket(state)}",
            "--namespace=k8s.io",
            "images",
            "import",
            f"--label={PINNED_LABEL}",
            "--local",  # the transfer service cannot discard layers
            "--discard-unpacked-layers",
            str(archive),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        raise procs.ClusterError(f"importing {archive} failed: {result.stderr.strip()}")


def pinned_images(state: ClusterState, bindir: Path) -> set[str]:
    """The references in the node's containerd that carry the pinned label."""
    listed = subprocess.run(
        [
            str(bindir / "ctr"),
            f"--address={containerd_socket(state)}",
            "--namespace=k8s.io",
            "images",
            "ls",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()[1:]
    return {line.split()[0] for line in listed if PINNED_LABEL in line.split()[-1].split(",")}


def node_images(state: ClusterState, bindir: Path, dirs: dict[str, Path]) -> str:
    """Import the pause and CoreDNS images (built here from their binaries); return CoreDNS's."""
    version = (
        subprocess.run(
            [str(bindir / "coredns"), "-version"], capture_output=True, text=True, check=True
        )
        .stdout.split()[0]
        .split("-")[-1]
    )
    coredns = f"{addons.COREDNS_IMAGE_REPO}:{version}"
    for name, binary, user in (
        (addons.PAUSE_IMAGE, "pause", "65535:65535"),
        (coredns, "coredns", "65532:65532"),
    ):
        archive = dirs["images"] / f"{binary}.tar"
        oci.single_binary_image(
            archive,
            name,
            bindir / binary,
            entrypoint=[f"/{binary}"],
            user=user,
            labels={"org.opencontainers.image.title": binary},
        )
        import_image(state, bindir, archive)
    return coredns


def start(
    state: ClusterState,
    bindir: Path,
    running: dict[str, subprocess.Popen[bytes]],
    timeout: float,
) -> None:
    """containerd → node images → kubelet → kube-proxy, kube-router → CoreDNS, each awaited."""
    workdir, cp_bindir = Path(state.workdir), Path(state.bindir)
    logdir, kubeconfig = workdir / "logs", Path(state.kubeconfig)
    dirs = write_configs(state, bindir)
    commands = argv(state, bindir, dirs)

    def launch(name: str) -> None:
        running[name] = procs.spawn(name, nodens.node_command(state, commands[name]), logdir)
        state.pids[name] = running[name].pid
        state.save()

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return procs.kubectl(cp_bindir, kubeconfig, *args, stdin=stdin)

    launch("containerd")
    procs.wait(
        "containerd's socket",
        lambda: containerd_socket(state).is_socket(),
        timeout,
        running,
        logdir,
    )
    coredns_image = node_images(state, bindir, dirs)
    kubectl("apply", "-f", "-", stdin=_list(addons.kube_router_rbac()))
    launch("kubelet")
    name = state.names.node_name
    procs.wait(
        f"the kubelet to register Node {name}",
        lambda: kubectl("get", "node", name, "-o", "name"),
        timeout,
        running,
        logdir,
    )
    launch("kube-proxy")
    launch("kube-router")
    procs.wait(
        f"Node {name} to become Ready",
        lambda: (
            kubectl(
                "get",
                "node",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            )
            == "True"
        ),
        timeout,
        running,
        logdir,
    )
    nodens.unshadow_tunables(state)  # checked by now: Ready comes after the kubelet's check
    kubectl("apply", "-f", "-", stdin=_list(addons.coredns(state.addresses, coredns_image)))
    procs.wait(
        "CoreDNS to become Available",
        lambda: (
            kubectl(
                "get",
                "deployment",
                "coredns",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.status.availableReplicas}",
            )
            == "1"
        ),
        timeout,
        running,
        logdir,
    )


def _list(items: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
