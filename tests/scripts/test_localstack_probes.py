"""The local stack's health probes and ports: a wrong answer is 'not healthy', never a crash."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from scripts.localstack import Ports, _HttpHealth


@pytest.fixture
def not_http() -> Iterator[int]:
    """A port whose listener answers every connection with bytes that are not HTTP/1."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)
                # What an HTTP/2-only server (a gRPC port) sends first: a SETTINGS frame.
                conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def test_an_answer_that_is_not_http_is_unhealthy_not_an_exception(not_http: int) -> None:
    # Before: http.client.BadStatusLine escaped the probe and errored the whole stack fixture.
    assert _HttpHealth(f"http://127.0.0.1:{not_http}/health")() is False


def test_nothing_listening_is_unhealthy() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    assert _HttpHealth(f"http://127.0.0.1:{port}/health")() is False


def test_free_ports_are_distinct() -> None:
    for _ in range(200):
        ports = Ports.free()
        chosen = [ports.memory, ports.tools, ports.orchestrator, ports.telemetry, ports.gateway]
        assert len(set(chosen)) == 5
