"""Cases the fuzzed edge (tests/fuzz) found, kept here where they run in a second."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import KEY_A, Gateway


@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/approvals/r-1/approve", "/api/approvals/r-1/deny"]
)
@pytest.mark.parametrize("body", [b"\x80", b'{"message": "\xff"}', b"\xc3\x28"])
async def test_a_body_that_is_not_utf8_is_422_not_500(
    gateway: Gateway, path: str, body: bytes
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        answer = await client.post(
            path, content=body, headers={"x-api-key": KEY_A, "content-type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"detail": "body is not UTF-8 JSON"}
    assert gateway.orchestrator.chats == []
