"""bench.readiness on the real API server: the operator bench's watch-kept count of ready
objects agrees with what the API lists, as objects become ready and go away, and after
the connection to the API server was lost for a while."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from bench.readiness import Readiness, available
from tests.e2e.kube import KubeCluster, deployment, wait_for


def listed_available(kube: KubeCluster, namespace: str) -> int:
    return sum(available(d) for d in kube.get("deployments", "-n", namespace)["items"])


def test_the_count_follows_the_api_without_polling_it(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube_cluster.apply(deployment("before", namespace, 1))  # exists before the watch starts
    wait_for(lambda: listed_available(kube_cluster, namespace) == 1, what="before available")
    other = Readiness(kube_cluster.kubeconfig, ("apps", "v1", "Deployment", "deployments"),
                      ["elsewhere"], available)  # fmt: skip
    watched = Readiness(kube_cluster.kubeconfig, ("apps", "v1", "Deployment", "deployments"),
                        [namespace], available)  # fmt: skip
    try:
        _follow_changes(kube_cluster, namespace, watched, other)
    finally:
        watched.stop()
        other.stop()


def _follow_changes(
    kube_cluster: KubeCluster, namespace: str, watched: Readiness, other: Readiness
) -> None:
    wait_for(lambda: watched.count() == 1, what="the existing Deployment counted")

    kube_cluster.apply(deployment("a", namespace, 2), deployment("b", namespace, 1))
    wait_for(lambda: watched.count() == 3, what="three Deployments counted available")
    assert listed_available(kube_cluster, namespace) == 3

    kube_cluster.apply(deployment("unschedulable", namespace, 1) | {
        "spec": deployment("unschedulable", namespace, 1)["spec"] | {
            "template": {
                "metadata": {"labels": {"app": "unschedulable"}},
                "spec": {
                    "nodeSelector": {"no-such-node": "true"},
                    "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                },
            }
        }
    })  # fmt: skip
    kube_cluster.kubectl("delete", "deployment", "b", "-n", namespace, "--wait=true")
    wait_for(lambda: watched.count() == 2, what="the deleted Deployment uncounted")
    assert listed_available(kube_cluster, namespace) == 2  # the unschedulable one is not
    # Another namespace's watch listed the kind (this namespace's Deployments included) and
    # counted none of them; without a list its zero would prove nothing.
    assert other.relists >= 1
    assert other.count() == 0


def test_an_unreachable_api_server_neither_ends_the_watch_nor_keeps_it_after_stop(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "gone", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }))  # fmt: skip
    watch = Readiness(str(kubeconfig), ("apps", "v1", "Deployment", "deployments"),
                      ["any"], available)  # fmt: skip
    time.sleep(2.5)  # several refused connections
    assert watch._thread.is_alive()
    assert watch.count() == 0
    watch.stop()
    watch._thread.join(timeout=10)
    assert not watch._thread.is_alive()


class CuttableLink:
    """A TCP forwarder to the API server that can be cut (every connection closed, new
    ones refused) and restored: the watch's connection lost for as long as a test likes."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            if not self._up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            cut, self._sockets = self._sockets, []
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()


@contextlib.contextmanager
def through_link(kubeconfig: str, tmp_path: Path) -> Iterator[tuple[str, CuttableLink]]:
    """A kubeconfig whose API server is reached through a CuttableLink (TLS is not checked:
    the forwarder's address is in no server certificate; the credentials are unchanged)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    server = urlsplit(cluster["cluster"]["server"])
    assert server.hostname is not None
    link = CuttableLink(server.hostname, server.port or 443)
    cluster["cluster"] = {
        "server": f"{server.scheme}://127.0.0.1:{link.port}",
        "insecure-skip-tls-verify": True,
    }
    path = tmp_path / "through-link.kubeconfig"
    path.write_text(json.dumps(config))
    try:
        yield str(path), link
    finally:
        link.close()


def test_an_object_deleted_while_the_watch_was_down_is_no_longer_counted(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    kube_cluster.apply(deployment("kept", namespace, 1), deployment("gone", namespace, 1))
    wait_for(lambda: listed_available(kube_cluster, namespace) == 2, what="both available")
    with through_link(kube_cluster.kubeconfig, tmp_path) as (kubeconfig, link):
        watch = Readiness(kubeconfig, ("apps", "v1", "Deployment", "deployments"),
                          [namespace], available)  # fmt: skip
        try:
            wait_for(lambda: watch.count() == 2, what="both counted")
            link.cut()
            kube_cluster.kubectl("delete", "deployment", "gone", "-n", namespace, "--wait=true")
            time.sleep(2.5)  # the watch has failed to reconnect a few times
            assert watch.count() == 2  # nothing seen yet: the watch is down
            link.restore()
            wait_for(lambda: watch.count() == 1, what="the deletion noticed after reconnecting")
            assert watch.relists >= 2  # it listed the kind again rather than only re-watch
        finally:
            watch.stop()
