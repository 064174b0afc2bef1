"""JWT authentication against a JWKS served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from phoenix_gateway.app import create_app
from phoenix_gateway.settings import GatewaySettings
from tests.gateway.servers import FakeOrchestrator, serve

ISSUER = "https://issuer.test"
AUDIENCE = "phoenix-gateway"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def token_for(signing_key: rsa.RSAPrivateKey) -> Callable[..., str]:
    def make(twin: str = "twin-j", *, key: Any = None, **claims: Any) -> str:
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": int(time.time()) + 300,
            "twin_id": twin,
            **claims,
        }
        return jwt.encode(payload, key or signing_key, algorithm="RS256", headers={"kid": "k1"})

    return make


@pytest.fixture
async def jwt_gateway(
    jwks_url: str, settings_for: Callable[..., GatewaySettings]
) -> AsyncIterator[str]:
    orchestrator = FakeOrchestrator()
    async with serve(orchestrator.app()) as orchestrator_url:
        settings = settings_for(
            orchestrator_url=orchestrator_url,
            jwt_jwks_url=jwks_url,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
        )
        async with serve(create_app(settings)) as url:
            yield url


async def test_a_valid_jwt_acts_for_the_twin_in_its_claim(
    jwt_gateway: str, token_for: Callable[..., str]
) -> None:
    token = token_for("twin-j")
    async with httpx.AsyncClient(base_url=jwt_gateway) as client:
        whoami = await client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.json() == {"twin_id": "twin-j", "method": "jwt"}
    ws_url = jwt_gateway.replace("http://", "ws://") + f"/ws/chat/twin-j?token={token}"
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"session_id": "s", "user_id": "twin-j", "message": "hi"}))
        assert json.loads(await ws.recv())["type"] == "complete_message"


@pytest.mark.parametrize(
    "bad",
    ["expired", "wrong-issuer", "wrong-audience", "foreign-key", "no-twin-claim"],
)
async def test_invalid_jwts_are_refused(
    jwt_gateway: str, token_for: Callable[..., str], bad: str
) -> None:
    token = {
        "expired": lambda: token_for(exp=int(time.time()) - 10),
        "wrong-issuer": lambda: token_for(iss="https://evil.test"),
        "wrong-audience": lambda: token_for(aud="someone-else"),
        "foreign-key": lambda: token_for(
            key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "no-twin-claim": lambda: token_for(twin_id=None),
    }[bad]()
    async with httpx.AsyncClient(base_url=jwt_gateway) as client:
        reply = await client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401


async def test_a_jwt_for_one_twin_cannot_open_another_twins_socket(
    jwt_gateway: str, token_for: Callable[..., str]
) -> None:
    ws_url = jwt_gateway.replace("http://", "ws://") + f"/ws/chat/twin-x?token={token_for()}"
    async with connect(ws_url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_a_socket_closes_when_its_jwt_expires(
    jwt_gateway: str, token_for: Callable[..., str]
) -> None:
    token = token_for(exp=int(time.time()) + 2)
    ws_url = jwt_gateway.replace("http://", "ws://") + f"/ws/chat/twin-j?token={token}"
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"session_id": "s", "user_id": "twin-j", "message": "hi"}))
        assert json.loads(await ws.recv())["type"] == "complete_message"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "credential expired")
