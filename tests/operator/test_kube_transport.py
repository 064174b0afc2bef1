"""kube_transport.AiohttpTransport: lightkube's requests exchanged over aiohttp, unchanged.

A real aiohttp server on loopback answers; lightkube's AsyncClient and kube.LightkubeClient
sit on top, as in production. (Over TLS, with client certificates, against the real
kube-apiserver: tests/e2e/test_operator_client.py.)
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from phoenix_operator.kube import KubeError, LightkubeClient
from phoenix_operator.kube_transport import AiohttpTransport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "alice-gateway-env", "namespace": "team-a"},
    "data": {"GATEWAY_PORT": "8181"},
}


def kube_json(body: Any, status: int = 200) -> web.Response:
    """JSON as kube-apiserver sends it: Content-Type exactly application/json."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


def config(server: str) -> KubeConfig:
    return KubeConfig.from_dict(
        {
            "clusters": [{"name": "test", "cluster": {"server": server}}],
            "users": [{"name": "test", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }
    )


async def apply_once(server: str, *, attempts: int = 3) -> dict[str, Any]:
    """One apply of CONFIGMAP through a fresh client, closed afterwards."""
    client = client_for(server, attempts=attempts)
    try:
        return await client.apply(CONFIGMAP)
    finally:
        await client.close()


def client_for(server: str, *, attempts: int = 3) -> LightkubeClient:
    transport = AiohttpTransport(ssl.create_default_context(), connections=2)
    lightkube = AsyncClient(config(server), transport=transport, timeout=httpx2.Timeout(5))
    return LightkubeClient(lightkube, attempts=attempts, backoff_seconds=0.001, backoff_cap=0.01)


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", seen
    finally:
        await server.close()


async def test_an_apply_arrives_as_lightkube_sent_it_and_its_answer_comes_back() -> None:
    bodies: list[bytes] = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        stored = {**CONFIGMAP, "metadata": {**CONFIGMAP["metadata"], "resourceVersion": "7"}}
        return kube_json(stored)

    async with serving(answer) as (server, seen):
        written = await apply_once(server)
    (request,) = seen
    assert request.method == "PATCH"
    assert request.path == "/api/v1/namespaces/team-a/configmaps/alice-gateway-env"
    assert request.query == {"fieldManager": "phoenix-operator", "force": "true"}
    assert request.headers["Content-Type"] == "application/apply-patch+yaml"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.headers.getall("Host") == [server.removeprefix("http://")]
    assert json.loads(bodies[0])["data"] == {"GATEWAY_PORT": "8181"}
    assert written["metadata"]["resourceVersion"] == "7"
    assert written["data"] == CONFIGMAP["data"]


async def test_a_gzipped_answer_is_decoded_once() -> None:
    async def answer(request: web.Request) -> web.Response:
        assert "gzip" in request.headers["Accept-Encoding"]
        body = gzip.compress(json.dumps(CONFIGMAP).encode())
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serving(answer) as (server, _):
        client = client_for(server)
        try:
            found = await client.get("v1", "ConfigMap", "team-a", "alice-gateway-env")
        finally:
            await client.close()
    assert found is not None
    assert found["data"] == CONFIGMAP["data"]


async def test_an_api_error_keeps_its_status() -> None:
    async def answer(request: web.Request) -> web.Response:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
                  "reason": "Invalid", "message": "spec.replicas: Invalid value"}  # fmt: skip
        return kube_json(status, status=422)

    async with serving(answer) as (server, seen):
        with pytest.raises(KubeError) as raised:
            await apply_once(server)
    assert raised.value.status == 422
    assert "spec.replicas: Invalid value" in str(raised.value)
    assert len(seen) == 1  # not transient: not retried


async def test_a_refused_connection_is_a_transport_error_and_is_retried() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = AiohttpTransport(ssl.create_default_context(), connections=2)
    request = httpx2.Request("GET", f"http://127.0.0.1:{port}/api")
    with pytest.raises(httpx2.ConnectError):
        await transport.handle_async_request(request)
    await transport.aclose()
    with pytest.raises(KubeError) as raised:
        await apply_once(f"http://127.0.0.1:{port}", attempts=2)
    assert raised.value.status == 0
    assert "ConnectError" in str(raised.value)


async def test_a_connection_dropped_mid_answer_is_retried_until_it_succeeds() -> None:
    calls = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:  # headers promise a body that never comes: the server hangs up
            response = web.StreamResponse(headers={"Content-Length": "1000"})
            await response.prepare(request)
            await response.write(b"{")
            assert request.transport is not None
            request.transport.close()
            return response
        return kube_json(CONFIGMAP)

    async with serving(answer) as (server, _):
        written = await apply_once(server)
    assert calls == 2
    assert written["data"] == CONFIGMAP["data"]


async def test_a_read_timeout_is_httpx_read_timeout() -> None:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return kube_json({})

    async with serving(answer) as (server, _):
        transport = AiohttpTransport(ssl.create_default_context(), connections=1)
        request = httpx2.Request(
            "GET", f"{server}/api", extensions={"timeout": {"connect": 1, "read": 0.2}}
        )
        try:
            with pytest.raises(httpx2.ReadTimeout):
                await transport.handle_async_request(request)
        finally:
            await transport.aclose()


async def test_a_server_that_stops_reading_is_a_write_timeout_not_a_hang() -> None:
    # A listening socket nobody reads from, with the smallest receive buffer: once the
    # kernel's buffers are full the request cannot be sent, and aiohttp's read timer has
    # not started. Before the transport bounded the send this waited forever.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        port = listener.getsockname()[1]
        transport = AiohttpTransport(ssl.create_default_context(), connections=1)
        timeouts = {"pool": 0.5, "connect": 0.5, "write": 0.5, "read": 0.5}
        request = httpx2.Request(
            "PUT",
            f"http://127.0.0.1:{port}/api",
            content=b"x" * (32 << 20),
            extensions={"timeout": timeouts},
        )
        try:
            with pytest.raises(httpx2.WriteTimeout):
                await asyncio.wait_for(transport.handle_async_request(request), 30)
        finally:
            await transport.aclose()
