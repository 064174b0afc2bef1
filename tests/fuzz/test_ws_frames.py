"""The chat socket (``/ws/chat/{user_id}``) under hypothesis: hostile frames on one socket.

The gateway runs in front of the real orchestrator (which uses the session's
real memory and tools). Every frame, text or binary, valid or not, must get
exactly one reply (the protocol: a ``complete_message`` or an error
``status_update`` with a reason), within the call timeout, on a socket that
stays open; a valid frame must get the ``complete_message``. Afterwards a plain
frame on the same socket is still answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from tests.fuzz import http_servers
from tests.fuzz import strategies as fz
from tests.fuzz.conftest import CALL_TIMEOUT_S, tally

pytestmark = pytest.mark.fuzz

TWIN = http_servers.FUZZ_TWIN
MAX_FRAME_BYTES = 4096  # the gateway under test's GATEWAY_WS_MAX_MESSAGE_BYTES


@pytest.fixture(scope="module")
def socket(fuzz_dir: Path, orchestrator_url: str) -> Iterator[ClientConnection]:
    keys = fuzz_dir / "ws-gateway-keys.json"
    with (
        http_servers.gateway(
            keys, orchestrator_url, rate_limit_per_minute=0, ws_max_message_bytes=MAX_FRAME_BYTES
        ) as (_, url),
        connect(
            url.replace("http://", "ws://") + f"/ws/chat/{TWIN}",
            additional_headers={"x-api-key": http_servers.FUZZ_KEY},
            max_size=None,
            open_timeout=CALL_TIMEOUT_S,
        ) as ws,
    ):
        yield ws
        after = exchange(ws, json.dumps({"session_id": "s", "user_id": TWIN, "message": "hi"}))
        assert after["type"] == "complete_message", after


def exchange(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    """Send one frame; its one reply, parsed (a hang or a closed socket fails)."""
    ws.send(frame)
    try:
        raw = ws.recv(timeout=CALL_TIMEOUT_S)
    except TimeoutError as err:
        raise AssertionError(f"no reply to {frame[:200]!r} (a hang)") from err
    reply: dict[str, Any] = json.loads(raw)
    return reply


def valid(frame: Any) -> bool:
    """The gateway's ChatFrame contract (contracts.ChatFrame), as the test reads it."""
    if not isinstance(frame, dict):
        return False
    session, user, message = (frame.get(k) for k in ("session_id", "user_id", "message"))
    namespace = frame.get("namespace")
    timestamp = frame.get("timestamp", "")
    return (
        isinstance(session, str)
        and 1 <= len(session) <= 200
        and user == TWIN
        and isinstance(message, str)
        and isinstance(timestamp, str)
        and (namespace is None or (isinstance(namespace, str) and len(namespace) <= 64))
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | fz.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(fz.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
odd_field = st.one_of(json_values, fz.odd_text(200, 64))
frames = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.one_of(st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True), odd_field),
        "user_id": st.one_of(st.just(TWIN), odd_field),
        "message": st.one_of(fz.text(max_size=300), odd_field),
        "namespace": st.one_of(st.none(), st.sampled_from(["", "default", "fuzz"]), odd_field),
        "timestamp": st.one_of(st.just("2026-01-01T00:00:00Z"), odd_field),
        "extra": json_values,
    },
)
valid_frames = st.fixed_dictionaries(
    {
        "session_id": st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
        "user_id": st.just(TWIN),
        "message": fz.text(max_size=300),
    },
    optional={
        "namespace": st.one_of(st.none(), st.sampled_from(["default", "fuzz", "ops_1"])),
        "timestamp": fz.text(max_size=40),
        "extra": json_values,
    },
)
texts = st.one_of(
    valid_frames.map(json.dumps),
    frames.map(json.dumps),
    json_values.map(json.dumps),
    fz.text(max_size=300),
    fz.sized(MAX_FRAME_BYTES),  # just under, at and over the frame limit
    st.sampled_from(["", "{", "[]", "null", '{"message": "\\ud800"}', "\ufeff{}"]),
)


@given(frame=st.one_of(texts, st.binary(max_size=300)))
@example(frame=json.dumps({"session_id": "s", "user_id": TWIN, "message": "x" * MAX_FRAME_BYTES}))
@example(frame=b"\x00\xff")
def test_every_frame_gets_exactly_one_reply(socket: ClientConnection, frame: str | bytes) -> None:
    reply = exchange(socket, frame)
    kind = reply.get("type")
    tally("gateway /ws/chat frame", f"{kind}:{reply.get('status')}")
    assert kind in ("complete_message", "status_update"), reply
    if kind == "status_update":
        assert reply["status"] == "error", reply
        assert reply["details"], reply
    parsed: Any = None
    if isinstance(frame, str):
        try:
            parsed = json.loads(frame)
        except ValueError:
            parsed = None
    size = len(frame.encode()) if isinstance(frame, str) else len(frame)
    if size <= MAX_FRAME_BYTES and valid(parsed):
        assert kind == "complete_message", f"a valid frame got {reply}"
