"""The gateway's and the orchestrator's HTTP APIs under schemathesis, from their OpenAPI schemas.

For every operation both apps document: cases that fit the schema (positive) and
cases that break it (negative), sent over real HTTP to the real apps (the
orchestrator on the session's real memory and tools processes, the gateway in
front of it, with a valid credential). Every answer must come within the call
timeout, be no 5xx, and be a 4xx with a reason in JSON when it refuses; both
apps must still answer afterwards. Numbers of cases come from the hypothesis
profile (conftest: fixed and small in CI, more in ``make fuzz``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from phoenix_gateway.app import create_app as create_gateway
from phoenix_gateway.settings import GatewaySettings
from phoenix_orchestrator.app import create_app as create_orchestrator
from phoenix_orchestrator.settings import OrchestratorSettings
from tests.fuzz import http_servers
from tests.fuzz.conftest import CALL_TIMEOUT_S, still_answers, tally

pytestmark = pytest.mark.fuzz

# The telemetry stream is open-ended by design and takes no input but a credential.
NOT_FUZZED = {("GET", "/v1/telemetry/stream")}


def operations(app: Any) -> dict[str, Any]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, as it should
        if (operation.method.upper(), operation.path) not in NOT_FUZZED:
            found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The operations as the apps document them (built once, never served)."""
    state = Path(tempfile.mkdtemp(prefix="phx-fuzz-schema-"))
    gateway = create_gateway(GatewaySettings(_env_file=None, host="127.0.0.1", local_no_auth=True))
    orchestrator = create_orchestrator(OrchestratorSettings(_env_file=None, state_dir=state))
    return operations(gateway), operations(orchestrator)


def takes_input(operation: Any) -> bool:
    # Path parameters alone are strings: nothing breaks their schema (a path is any text).
    return any(len(part) for part in (operation.query, operation.body))


def cases(operations: dict[str, Any]) -> list[tuple[str, GenerationMode]]:
    """Each operation with schema-fitting input, and with input that breaks it if it has any."""
    return [
        (label, mode)
        for label, operation in sorted(operations.items())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or takes_input(operation)
    ]


GATEWAY_OPERATIONS, ORCHESTRATOR_OPERATIONS = _schemas()
# The gateway's proxy routes read their input as the orchestrator does and document none
# of it, so their cases come from the orchestrator's schema, sent to the gateway's path.
PROXIED = {
    "POST /chat": "/api/chat",
    "GET /v1/approvals": "/api/approvals",
    "POST /v1/approvals/{request_id}/approve": "/api/approvals",
    "POST /v1/approvals/{request_id}/deny": "/api/approvals",
}


@pytest.fixture(scope="module")
def gateway_url(fuzz_dir: Path, orchestrator_url: str) -> Iterator[str]:
    # The rate limit is tested in tests/gateway; here it would refuse the fuzzing itself.
    keys = fuzz_dir / "gateway-keys.json"
    with http_servers.gateway(keys, orchestrator_url, rate_limit_per_minute=0) as (_, url):
        yield url
        still_answers(url + "/api/health")


def judge(label: str, case: Any, response: requests.Response) -> None:
    tally(label, str(response.status_code))
    where = f"{label}: {case.method} {case.formatted_path} query={case.query} body={case.body!r}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert reason(response), (
            f"{where} -> {response.status_code} without a reason: {response.text[:300]}"
        )


def reason(response: requests.Response) -> str | None:
    """FastAPI's ``detail``, or the orchestrator's envelope's ``error.message`` (the original's)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return str(body.get("detail") or message or "") or None


def send(case: Any, base_url: str, headers: dict[str, str]) -> requests.Response:
    try:
        response: requests.Response = case.call(
            base_url=base_url, headers=headers, timeout=CALL_TIMEOUT_S
        )
    except requests.Timeout as err:
        raise AssertionError(f"{case.method} {case.formatted_path}: no answer (a hang)") from err
    return response


@pytest.mark.parametrize(("label", "mode"), cases(ORCHESTRATOR_OPERATIONS))
@given(data=st.data())
def test_orchestrator_answers_every_case_with_no_5xx(
    orchestrator_url: str, label: str, mode: GenerationMode, data: st.DataObject
) -> None:
    case = data.draw(ORCHESTRATOR_OPERATIONS[label].as_strategy(generation_mode=mode))
    response = send(case, orchestrator_url, {"x-user-id": http_servers.FUZZ_TWIN})
    judge(f"orchestrator {label} ({mode})", case, response)


@pytest.mark.parametrize(("label", "mode"), cases(GATEWAY_OPERATIONS))
@given(data=st.data())
def test_gateway_answers_every_case_with_no_5xx(
    gateway_url: str, label: str, mode: GenerationMode, data: st.DataObject
) -> None:
    case = data.draw(GATEWAY_OPERATIONS[label].as_strategy(generation_mode=mode))
    response = send(case, gateway_url, {"x-api-key": http_servers.FUZZ_KEY})
    judge(f"gateway {label} ({mode})", case, response)


@pytest.mark.parametrize(("label", "mode"), cases({k: ORCHESTRATOR_OPERATIONS[k] for k in PROXIED}))
@given(data=st.data())
def test_gateway_proxy_answers_the_orchestrators_cases_with_no_5xx(
    gateway_url: str, label: str, mode: GenerationMode, data: st.DataObject
) -> None:
    case = data.draw(ORCHESTRATOR_OPERATIONS[label].as_strategy(generation_mode=mode))
    kwargs = case.as_transport_kwargs(base_url="http://orchestrator")
    path = kwargs["url"].removeprefix("http://orchestrator")
    target = (
        PROXIED[label] + path.removeprefix("/v1/approvals")
        if "approvals" in path
        else PROXIED[label]
    )
    kwargs.update(url=gateway_url + target, timeout=CALL_TIMEOUT_S)
    kwargs["headers"] = {**kwargs["headers"], "x-api-key": http_servers.FUZZ_KEY}
    if mode is GenerationMode.POSITIVE:
        # Valid input names the caller's twin, or the gateway refuses it (403) before the
        # orchestrator sees it.
        for place in (kwargs.get("json"), kwargs.get("params")):
            if isinstance(place, dict) and "twin_id" in place:
                place["twin_id"] = http_servers.FUZZ_TWIN
    try:
        response = requests.request(**kwargs)  # noqa: S113 - the timeout is in kwargs
    except requests.Timeout as err:
        raise AssertionError(f"{kwargs['method']} {target}: no answer (a hang)") from err
    judge(
        f"gateway {kwargs['method']} {PROXIED[label]} ({mode}, orchestrator's schema)",
        case,
        response,
    )
