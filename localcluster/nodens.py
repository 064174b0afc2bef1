"""The real node's own network and mount namespaces, its link to the host, and its cgroup.

Everything the node's daemons create lives in namespaces held by one ``holder`` process:

* network: the Pods' bridge, kube-proxy's and kube-router's iptables chains, the Pods' netns
  and veths. kube-proxy's chain names are fixed (KUBE-SERVICES, ...), so two clusters can only
  coexist if each has its own network namespace, as each kind node has. The host sees one veth
  (``phx<id>h``) with routes to this cluster's Pod and Service /24s; the node has no default
  route, so nothing a Pod sends can leave the machine.
* mount: a fresh /run (containerd's shim sockets and /run/netns are hard-coded there),
  copy-on-write overlays of /var/lib and /var/log (libcni's cache in /var/lib/cni and the
  kubelet's /var/log/containers are hard-coded too) whose writes land in the workdir, and the
  kernel tunables the kubelet insists on, shadowed so it never changes the host's.

When the holder and the daemons are gone, the kernel frees both namespaces and with them every
mount, interface and rule: teardown cannot leak them, even after a crash. Processes are found
through the node's cgroup (``phoenixtwin-<id>`` in every hierarchy), which the daemons join
before they exec and which the kubelet uses as its ``cgroupRoot``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from localcluster import procs
from localcluster.state import ClusterState

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The kubelet's wanted values (k8s.io/component-helpers/node/util/sysctl); with
# protectKernelDefaults it only reads them, and here it reads these shadows.
KUBELET_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}

# The node's directory as the node's daemons see it: bind-mounted under its private /run, so
# the path is traversable by every uid. A user-namespaced Pod's runc resolves its rootfs and
# volume paths as the Pod's mapped root, which could not get through a 0700 ancestor of the
# workdir (pytest's /tmp/pytest-of-root is one).
NODE_VIEW = "/run/phoenixtwin/node"

HOLDER = r"""
set -eu
dir=$1
mount -t tmpfs -o mode=0755 phoenixtwin-run /run
mkdir -p "$2"
mount --bind "$dir" "$2"
# A proc with nothing mounted over it. A user-namespaced Pod (hostUsers: false, the tools
# Pod) may mount its own /proc only while its mount namespace holds a fully visible proc
# (the kernel's mnt_already_visible); the tunable shadows below cover files of /proc.
mkdir -p /run/phoenixtwin-proc
mount -t proc -o nosuid,nodev,noexec phoenixtwin-proc /run/phoenixtwin-proc
for d in var/lib var/log; do
  mkdir -p "$dir/overlay/$d/upper" "$dir/overlay/$d/work"
  mount -t overlay -o "lowerdir=/$d,upperdir=$dir/overlay/$d/upper,workdir=$dir/overlay/$d/work" \
    phoenixtwin-overlay "/$d"
done
for f in "$dir"/tunables/*; do
  mount --bind "$f" "/proc/sys/$(basename "$f" | tr . /)"
done
ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
touch "$dir/holder.ready"
exec sleep infinity
"""


def hierarchies() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers and the v2 unified one)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0]
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return found


def kill_hierarchy() -> Path:
    """The hierarchy whose ``cgroup.kill`` ends every node process at once (v2, or hybrid's)."""
    for path in hierarchies():
        if (path / "cgroup.subtree_control").exists():
            return path
    raise procs.ClusterError("a real node needs the cgroup v2 (or hybrid unified) hierarchy")


def create_cgroups(name: str) -> None:
    for root in hierarchies():
        path = root / name
        path.mkdir(exist_ok=True)
        # A v1 cpuset starts empty and refuses tasks until it has CPUs and memory nodes.
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (path / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((root / knob).read_text())
    (kill_hierarchy() / name / "node").mkdir(exist_ok=True)


def cgroup_pids(name: str) -> list[int]:
    """Every process in the node's cgroup tree, in any hierarchy."""
    pids: set[int] = set()
    for root in hierarchies():
        top = root / name
        if not top.exists():
            continue
        for procs_file in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs_file.read_text().split())
    return sorted(pids)


def kill_cgroup(name: str, timeout: float = 30) -> None:
    """SIGKILL everything under the node's cgroup and remove the cgroups."""
    kill = kill_hierarchy() / name / "cgroup.kill"
    deadline = time.monotonic() + timeout
    while True:
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
        left = cgroup_pids(name)
        for pid in left:  # v1-only leftovers (moved out of the unified tree)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        if not left:
            break
        if time.monotonic() > deadline:
            raise procs.ClusterError(f"processes of cgroup {name} survived SIGKILL: {left}")
        time.sleep(0.1)
    for root in hierarchies():
        top = root / name
        if not top.exists():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            _rmdir(path)
        _rmdir(top)


def _rmdir(path: Path) -> None:
    # An emptied cgroup can stay busy for a moment while the kernel reaps its last task.
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    path.rmdir()


def unshadow_tunables(state: ClusterState) -> None:
    """Lift the tunables' shadows once the kubelet has checked them (it does so once, before
    its Node is Ready). With files mounted over parts of /proc the kernel refuses a fresh proc
    mount in a user namespace (mount_too_revealing), so `hostUsers: false` Pods, whose runc
    mounts one, could not start while they are there."""
    run_in_node(state, ["umount", *(f"/proc/sys/{key}" for key in KUBELET_TUNABLES)])


def _holder(state: ClusterState) -> int:
    if state.holder_pid is None:
        raise RuntimeError("the node's namespaces are not held: start the node first")
    return state.holder_pid


def node_command(state: ClusterState, argv: list[str]) -> list[str]:
    """``argv`` run inside the node: in its cgroup, then in its mount and network namespaces."""
    holder_pid = _holder(state)
    procs_file = kill_hierarchy() / state.names.cgroup / "node" / "cgroup.procs"
    join = 'echo $$ > "$1" && shift && exec "$@"'
    nsenter = ["nsenter", f"--target={holder_pid}", "--mount", "--net", "--"]
    return ["sh", "-c", join, "join", str(procs_file), *nsenter, *argv]


def run_in_node(state: ClusterState, argv: list[str]) -> str:
    """Run a short command in the node's namespaces (not its cgroup) and return its stdout."""
    holder_pid = _holder(state)
    result = subprocess.run(
        ["nsenter", f"--target={holder_pid}", "--mount", "--net", "--", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise procs.ClusterError(f"{shlex.join(argv)} in the node failed: {result.stderr.strip()}")
    return result.stdout


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise procs.ClusterError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def start_holder(state: ClusterState, timeout: float) -> subprocess.Popen[bytes]:
    """Create the node's namespaces, its link to the host and the routes to its Pods/Services."""
    nodedir = Path(state.workdir) / "node"
    tunables = nodedir / "tunables"
    tunables.mkdir(parents=True, exist_ok=True)
    for key, value in KUBELET_TUNABLES.items():
        (tunables / key.replace("/", ".")).write_text(value + "\n")
    names, addr = state.names, state.addresses
    create_cgroups(names.cgroup)
    procs_file = kill_hierarchy() / names.cgroup / "node" / "cgroup.procs"
    (nodedir / "holder.ready").unlink(missing_ok=True)
    holder = procs.spawn(
        "node-namespaces",
        [
            "sh",
            "-c",
            'echo $$ > "$1" && shift && exec "$@"',
            "join",
            str(procs_file),
            "unshare",
            "--mount",
            "--net",
            "--propagation=slave",
            "--",
            "sh",
            "-c",
            HOLDER,
            "holder",
            str(nodedir),
            NODE_VIEW,
        ],
        Path(state.workdir) / "logs",
    )
    state.holder_pid = holder.pid
    state.save()
    procs.wait(
        "the node's namespaces",
        (nodedir / "holder.ready").exists,
        timeout,
        {"node-namespaces": holder},
        Path(state.workdir) / "logs",
    )
    state.namespaces = {ns: os.stat(f"/proc/{holder.pid}/ns/{ns}").st_ino for ns in ("net", "mnt")}
    state.save()
    peer = ["peer", "name", names.node_veth, "netns", str(holder.pid)]
    _ip("link", "add", names.host_veth, "type", "veth", *peer)
    _ip("addr", "add", f"{addr.host_ip}/30", "dev", names.host_veth)
    _ip("link", "set", names.host_veth, "up")
    run_in_node(state, ["ip", "addr", "add", f"{addr.node_ip}/30", "dev", names.node_veth])
    run_in_node(state, ["ip", "link", "set", names.node_veth, "up"])
    # Tests on the host dial this cluster's Pod and Service addresses; nothing else is routed.
    for cidr in (addr.pod_cidr, addr.service_cidr):
        _ip("route", "add", cidr, "via", addr.node_ip, "dev", names.host_veth)
    return holder


def slot_in_use(host_ip: str) -> bool:
    """Whether another cluster (or anything) already uses this slot's host address."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    return f" {host_ip}/" in out


def host_leftovers(state: ClusterState) -> list[str]:
    """What of this node is still visible on the host: interfaces, routes, mounts, cgroups."""
    names, found = state.names, []
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    for ifname in (names.host_veth, names.node_veth, names.bridge):
        if f": {ifname}@" in links or f": {ifname}:" in links:
            found.append(f"interface {ifname}")
    if state.slot is not None:
        routes = subprocess.run(
            ["ip", "-o", "-4", "route", "show"], capture_output=True, text=True, check=True
        ).stdout
        for cidr in (state.addresses.pod_cidr, state.addresses.service_cidr):
            if cidr in routes:
                found.append(f"route {cidr}")
    workdir = str(Path(state.workdir).resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if workdir in line or "phoenixtwin-" in line:
            found.append(f"mount {line.split()[4]}")
    found += [
        f"cgroup {root / names.cgroup}" for root in hierarchies() if (root / names.cgroup).exists()
    ]
    found += [f"process {pid}" for pid in cgroup_pids(names.cgroup)]
    found += [f"{ns} namespace held by pid {pid}" for ns, pid in _namespace_holders(state)]
    found += _host_rules(state)
    return found


def _namespace_holders(state: ClusterState) -> list[tuple[str, int]]:
    """(namespace, pid) for every process still in the node's network or mount namespace."""
    held = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for ns, inode in state.namespaces.items():
            with contextlib.suppress(OSError):
                if os.stat(proc / "ns" / ns).st_ino == inode:
                    held.append((ns, int(proc.name)))
    return held


def _host_rules(state: ClusterState) -> list[str]:
    """Host iptables rules naming this cluster (the node's own rules live in its netns)."""
    if shutil.which("iptables-save") is None or state.slot is None:
        return []
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    marks = (state.addresses.pod_cidr, state.addresses.service_cidr, state.names.bridge)
    return [f"iptables rule {line}" for line in dump.splitlines() if any(m in line for m in marks)]
