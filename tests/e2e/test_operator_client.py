"""phoenix-operator's API client on the real kube-apiserver: its TLS and its connection pool.

``LightkubeClient.from_environment`` builds its own HTTP transport (to bound and keep its
connections), so the kubeconfig's CA and client certificate are applied by our code, not
lightkube's: a real API server with TLS and client-certificate authentication proves both.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from phoenix_operator.kube import LightkubeClient
from tests.e2e.kube import KubeCluster

CONNECTIONS = 4
CONCURRENT = 40


def _apiserver_port(kube: KubeCluster) -> int:
    server = kube.kubectl(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    ).stdout.strip()
    port = urlsplit(server).port
    assert port is not None, server
    return port


def _connections_to(port: int) -> set[int]:
    """Local ports of this process's established TCP connections to ``port``."""
    return {
        conn.laddr.port
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    }


@pytest.fixture
def kubeconfig_env(kube_cluster: KubeCluster, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("KUBECONFIG", kube_cluster.kubeconfig)
    return _apiserver_port(kube_cluster)


async def test_a_burst_of_requests_shares_a_bounded_set_of_kept_connections(
    kubeconfig_env: int, namespace: str
) -> None:
    """40 concurrent applies over at most 4 TLS connections, and the next burst reuses
    the same connections: no connection opened and closed per request."""
    port = kubeconfig_env
    before = _connections_to(port)
    client = LightkubeClient.from_environment(timeout=30, attempts=3, connections=CONNECTIONS)
    try:

        def configmap(i: int, mark: str) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"pool-{i}", "namespace": namespace},
                "data": {"mark": mark},
            }

        async def burst(mark: str) -> set[int]:
            written = await asyncio.gather(
                *(client.apply(configmap(i, mark)) for i in range(CONCURRENT))
            )
            assert [body["data"]["mark"] for body in written] == [mark] * CONCURRENT
            return _connections_to(port) - before

        first = await burst("one")
        assert 1 <= len(first) <= CONNECTIONS
        second = await burst("two")
        assert second == first, "the second burst opened new connections"
        stored = await client.get("v1", "ConfigMap", namespace, f"pool-{CONCURRENT - 1}")
        assert stored is not None
        assert stored["data"] == {"mark": "two"}
    finally:
        await client.close()
    assert _connections_to(port) - before == set()
