"""A real Kubernetes control plane on 127.0.0.1, built from Go modules, for tests and cluster-up.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real
binaries (scripts/build-control-plane.sh); kwok stands in for kubelets, so Pods
are scheduled by the real scheduler and then marked Running and Ready, and
terminating ones are finished. There is no container runtime: nothing in a Pod
actually runs, and nothing may dial a Pod IP.

Usage: ``python -m tests.e2e.localcluster up|down|status`` (the Makefile's
cluster targets) or the ``kube_cluster`` fixture in tests/e2e/conftest.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / ".cluster"
BUILD_SCRIPT = REPO / "scripts" / "build-control-plane.sh"
# Order matters: started in this order, stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODE_NAME = "kwok-node-0"


class ClusterError(RuntimeError):
    """The control plane could not be started; the message says which part and where its log is."""


@dataclass
class ClusterState:
    """What `down` and the fixture need to find and stop a running cluster."""

    workdir: str
    kubeconfig: str
    server: str
    bindir: str
    pids: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        Path(self.workdir, "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, workdir: Path) -> ClusterState | None:
        path = workdir / "state.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


# --------------------------------------------------------------------------- binaries


def ensure_binaries() -> Path:
    """Build (or find in the version-keyed cache) the control-plane binaries; return their dir."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], check=False, stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise ClusterError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- PKI


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    elif server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(pki: Path) -> None:
    """A throwaway CA, the apiserver's serving cert, an admin client cert and the SA key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, srv_key, admin_key, sa_key = _key(), _key(), _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phoenixtwin-test-ca")])
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    srv = _cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        srv_key,
        ca_name,
        ca_key,
        server=True,
    )
    # CN is the user and O the group, as kube-apiserver reads client certificates.
    admin = _cert(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
            ]
        ),
        admin_key,
        ca_name,
        ca_key,
    )
    for name, cert, key in (
        ("ca", ca, ca_key),
        ("apiserver", srv, srv_key),
        ("admin", admin, admin_key),
    ):
        (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / f"{name}.key", key)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def kubeconfig_text(server: str, pki: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "phoenix-local",
                    "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki / "admin.crt"),
                        "client-key": str(pki / "admin.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "phoenix-local", "context": {"cluster": "phoenix-local", "user": "admin"}}
            ],
            "current-context": "phoenix-local",
        },
        indent=2,
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(name: str, argv: list[str], logdir: Path) -> subprocess.Popen[bytes]:
    log = (logdir / f"{name}.log").open("ab")
    # Own session: `down` kills the whole group and a Ctrl-C in the terminal
    # that ran `make cluster-up` does not reach it.
    return subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _wait(
    what: str,
    check: object,
    timeout: float,
    procs: dict[str, subprocess.Popen[bytes]],
    logdir: Path,
) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ClusterError(
                    f"{name} exited with code {proc.returncode} while waiting for {what}; "
                    f"see {logdir / (name + '.log')}"
                )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {logdir}")


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def client_ssl(pki: Path) -> ssl.SSLContext:
    """TLS context of the admin user: trusts the cluster CA, presents the admin client cert."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def _https_ok(url: str, pki: Path | None) -> bool:
    # KCM and the scheduler serve self-signed certs of their own: only liveness is checked there.
    ctx = ssl._create_unverified_context() if pki is None else client_ssl(pki)  # noqa: S323 - liveness only, self-signed
    with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:  # noqa: S310 - https, ours
        return bool(resp.status == 200)


def _kubectl(bindir: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(bindir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


DEFAULT_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}
HOSTPATH_PV_DIR = Path("/tmp/hostpath_pv")  # noqa: S108 - fixed by kube-controller-manager


def _remove_volume_dirs(state: ClusterState) -> None:
    """The directories the hostpath provisioner made for this cluster's volumes (best effort)."""
    with contextlib.suppress(ClusterError, OSError, subprocess.SubprocessError):
        paths = _kubectl(
            Path(state.bindir),
            Path(state.kubeconfig),
            "get",
            "pv",
            "-o",
            "jsonpath={.items[*].spec.hostPath.path}",
        ).split()
        for path in map(Path, paths):
            if path.parent == HOSTPATH_PV_DIR:
                subprocess.run(["rm", "-rf", str(path)], check=False)


FAKE_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": NODE_NAME,
        "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        "labels": {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        },
    },
    "status": {
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
    },
}


def start(
    workdir: Path = DEFAULT_DIR, bindir: Path | None = None, timeout: float = 120
) -> ClusterState:
    """Start the control plane in ``workdir`` and return once a Node is Ready and SAs exist."""
    existing = ClusterState.load(workdir)
    if existing and any(_alive(pid) for pid in existing.pids.values()):
        raise ClusterError(f"a cluster is already running from {workdir}; run `make cluster-down`")
    bindir = bindir or ensure_binaries()
    for sub in ("etcd", "logs", "pki", "apiserver-certs"):
        path = workdir / sub
        if sub != "logs" and path.exists():
            subprocess.run(["rm", "-rf", str(path)], check=True)
        path.mkdir(parents=True, exist_ok=True)
    pki, logdir = workdir / "pki", workdir / "logs"
    write_pki(pki)
    ep, pp, ap, kcmp, sp = (free_port() for _ in range(5))
    server = f"https://127.0.0.1:{ap}"
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text(server, pki))
    kubeconfig.chmod(0o600)
    kc = str(kubeconfig)
    bin_ = {name: str(bindir / name) for name in COMPONENTS}
    argv = {
        "etcd": [
            bin_["etcd"],
            "--name=node0",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ep}",
            f"--advertise-client-urls=http://127.0.0.1:{ep}",
            f"--listen-peer-urls=http://127.0.0.1:{pp}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{pp}",
            f"--initial-cluster=node0=http://127.0.0.1:{pp}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--auto-compaction-retention=1",
            "--log-level=warn",
            "--listen-metrics-urls=",
            "--quota-backend-bytes=4294967296",
        ],
        "kube-apiserver": [
            bin_["kube-apiserver"],
            f"--etcd-servers=http://127.0.0.1:{ep}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ap}",
            # Loopback is not a valid Endpoints address; with no reconciler the
            # `kubernetes` Service simply has no endpoints (nothing in-cluster dials it).
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            "--v=1",
        ],
        "kube-controller-manager": [
            bin_["kube-controller-manager"],
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcmp}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=false",
            "--controllers=*",
            "--cluster-cidr=10.244.0.0/16",
            # Dynamic PersistentVolumes (directories under /tmp/hostpath_pv) for the default
            # StorageClass below: a twin's orchestrator claims one.
            "--enable-hostpath-provisioner=true",
            "--v=1",
        ],
        "kube-scheduler": [
            bin_["kube-scheduler"],
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={sp}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--v=1",
        ],
        "kwok": [
            bin_["kwok"],
            f"--kubeconfig={kc}",
            "--manage-all-nodes=true",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.243.0.1",
            "--node-lease-duration-seconds=40",
            f"--config={workdir / 'kwok.yaml'}",
        ],
    }
    (workdir / "kwok.yaml").write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
    )
    state = ClusterState(workdir=str(workdir), kubeconfig=kc, server=server, bindir=str(bindir))
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def launch(name: str) -> None:
        procs[name] = _spawn(name, argv[name], logdir)
        state.pids[name] = procs[name].pid
        state.save()

    try:
        launch("etcd")
        _wait(
            "etcd",
            lambda: _port_open(ep),
            timeout,
            procs,
            logdir,
        )
        launch("kube-apiserver")
        _wait(
            "kube-apiserver /readyz",
            lambda: _https_ok(f"{server}/readyz", pki),
            timeout,
            procs,
            logdir,
        )
        launch("kube-controller-manager")
        launch("kube-scheduler")
        _wait(
            "kube-controller-manager /healthz",
            lambda: _https_ok(f"https://127.0.0.1:{kcmp}/healthz", None),
            timeout,
            procs,
            logdir,
        )
        _wait(
            "kube-scheduler /healthz",
            lambda: _https_ok(f"https://127.0.0.1:{sp}/healthz", None),
            timeout,
            procs,
            logdir,
        )
        launch("kwok")
        _kubectl(bindir, kubeconfig, "apply", "-f", "-", stdin=json.dumps(FAKE_NODE))
        _kubectl(bindir, kubeconfig, "apply", "-f", "-", stdin=json.dumps(DEFAULT_STORAGE_CLASS))
        _wait(
            "the kwok Node to become Ready",
            lambda: (
                _kubectl(
                    bindir,
                    kubeconfig,
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                )
                == "True"
            ),
            timeout,
            procs,
            logdir,
        )
        _wait(
            "ServiceAccount default/default (created by kube-controller-manager)",
            lambda: bool(_kubectl(bindir, kubeconfig, "get", "sa", "default", "-o", "name")),
            timeout,
            procs,
            logdir,
        )
    except BaseException:
        stop(workdir)
        raise
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop(workdir: Path = DEFAULT_DIR, timeout: float = 15) -> list[str]:
    """Stop every component (reverse start order) and return the names that needed SIGKILL."""
    state = ClusterState.load(workdir)
    if state is None:
        return []
    apiserver = state.pids.get("kube-apiserver")
    if apiserver is not None and _alive(apiserver):
        _remove_volume_dirs(state)
    killed: list[str] = []
    for name in reversed(COMPONENTS):
        pid = state.pids.get(name)
        if pid is None or not _alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            killed.append(name)
            while _alive(pid):
                time.sleep(0.05)
    Path(workdir, "state.json").unlink(missing_ok=True)
    return killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state and data directory")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(ensure_binaries())
        return 0
    if args.command == "up":
        started = time.monotonic()
        try:
            state = start(args.dir)
        except ClusterError as err:
            print(f"cluster-up failed: {err}", file=sys.stderr)
            return 1
        print(f"control plane ready in {time.monotonic() - started:.1f}s at {state.server}")
        print(f"export KUBECONFIG={state.kubeconfig}")
        return 0
    if args.command == "down":
        killed = stop(args.dir)
        print("control plane stopped" + (f" (SIGKILL: {', '.join(killed)})" if killed else ""))
        return 0
    current = ClusterState.load(args.dir)
    if current is None:
        print("no cluster state")
        return 1
    for name, pid in current.pids.items():
        print(f"{name:26} pid {pid:<8} {'running' if _alive(pid) else 'gone'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
