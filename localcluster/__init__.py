"""A real Kubernetes cluster on this machine, for tests, benchmarks and `make cluster-up`.

The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) is built from
Go modules by scripts/build-control-plane.sh. Its node is either kwok (the default: Pods are
Running on paper only, nothing may dial them) or, with ``NODE=real``, a real kubelet with
containerd, runc, kube-proxy, CoreDNS and NetworkPolicy enforcement in namespaces of its own
(see ``localcluster.node`` and ``localcluster.nodens``).

Modules, one concern each: ``state`` (state file, names and addresses), ``pki``,
``controlplane``, ``fakenode`` (kwok), ``nodens`` (the node's namespaces and cgroup), ``node``
(its daemons), ``addons`` (RBAC, CoreDNS), ``oci`` (image archives), ``images`` (building and
loading the product's images), ``cluster`` (start/stop) and ``__main__`` (the CLI).
"""

from localcluster.cluster import ensure_binaries, leftovers, node_from_env, start, stop
from localcluster.procs import ClusterError, alive, client_ssl, free_port
from localcluster.state import DEFAULT_DIR, ClusterState

__all__ = [
    "DEFAULT_DIR",
    "ClusterError",
    "ClusterState",
    "alive",
    "client_ssl",
    "ensure_binaries",
    "free_port",
    "leftovers",
    "node_from_env",
    "start",
    "stop",
]
