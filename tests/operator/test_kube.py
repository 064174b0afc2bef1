"""kube.LightkubeClient: server-side apply as phoenix-operator, retries only what is transient.

The API server's answers are scripted at the HTTP transport (a 429 or a 503 cannot be
provoked on demand from the real kube-apiserver of the e2e tests); the requests are the
real ones lightkube builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from phoenix_operator.kube import KubeError, LightkubeClient

CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "alice-gateway-env", "namespace": "team-a"},
    "data": {"GATEWAY_PORT": "8181"},
}


def stored(body: dict[str, Any], revision: str = "7") -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "resourceVersion": revision}}


def client(answers: list[httpx2.Response], seen: list[httpx2.Request]) -> LightkubeClient:
    script = iter(answers)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return next(script)

    transport = httpx2.MockTransport(handler)
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "test", "cluster": {"server": "https://kube.test"}}],
            "users": [{"name": "test", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }
    )
    lightkube = AsyncClient(config, transport=transport)
    return LightkubeClient(lightkube, attempts=3, backoff_seconds=0.001, backoff_cap=0.01)


def status(code: int, reason: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": f"{reason} (test)"}  # fmt: skip
    return httpx2.Response(code, json=body, headers=headers or {})


async def test_apply_is_a_forced_server_side_apply_as_phoenix_operator() -> None:
    seen: list[httpx2.Request] = []
    kube = client([httpx2.Response(200, json=stored(CONFIGMAP))], seen)
    applied = await kube.apply(CONFIGMAP)
    request = seen[0]
    assert request.method == "PATCH"
    assert request.url.path == "/api/v1/namespaces/team-a/configmaps/alice-gateway-env"
    assert dict(request.url.params) == {"fieldManager": "phoenix-operator", "force": "true"}
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert json.loads(request.content)["data"] == {"GATEWAY_PORT": "8181"}
    assert applied["metadata"]["resourceVersion"] == "7"


@pytest.mark.parametrize(
    "first",
    [
        lambda: status(429, "TooManyRequests", {"Retry-After": "0"}),
        lambda: status(503, "ServiceUnavailable"),
        lambda: status(500, "InternalError"),
    ],
    ids=["429-retry-after", "503", "500"],
)
async def test_transient_failures_are_retried(first: Callable[[], httpx2.Response]) -> None:
    seen: list[httpx2.Request] = []
    kube = client([first(), first(), httpx2.Response(200, json=stored(CONFIGMAP))], seen)
    applied = await kube.apply(CONFIGMAP)
    assert len(seen) == 3
    assert applied["data"] == {"GATEWAY_PORT": "8181"}


async def test_retries_are_bounded_and_end_in_a_kube_error_naming_the_object() -> None:
    seen: list[httpx2.Request] = []
    kube = client([status(503, "ServiceUnavailable")] * 3, seen)
    with pytest.raises(KubeError) as err:
        await kube.apply(CONFIGMAP)
    assert len(seen) == 3
    assert err.value.status == 503
    assert "apply ConfigMap alice-gateway-env" in str(err.value)


async def test_a_refusal_is_not_retried() -> None:
    seen: list[httpx2.Request] = []
    kube = client([status(422, "Invalid")], seen)
    with pytest.raises(KubeError) as err:
        await kube.apply(CONFIGMAP)
    assert (len(seen), err.value.status) == (1, 422)


async def test_a_missing_object_reads_as_none_and_deletes_as_done() -> None:
    seen: list[httpx2.Request] = []
    kube = client([status(404, "NotFound"), status(404, "NotFound")], seen)
    assert await kube.get("v1", "Secret", "team-a", "alice-gateway-api-key") is None
    await kube.delete("apps/v1", "Deployment", "team-a", "alice-memory")
    assert [r.method for r in seen] == ["GET", "DELETE"]


async def test_twin_status_is_a_merge_patch_of_the_status_subresource() -> None:
    seen: list[httpx2.Request] = []
    twin = {"apiVersion": "phoenixtwin.io/v1alpha1", "kind": "PhoenixTwin",
            "metadata": {"name": "alice", "namespace": "team-a"}}  # fmt: skip
    kube = client([httpx2.Response(200, json=twin)], seen)
    await kube.patch_twin_status("team-a", "alice", {"phase": "Ready"})
    request = seen[0]
    assert (
        request.url.path
        == "/apis/phoenixtwin.io/v1alpha1/namespaces/team-a/phoenixtwins/alice/status"
    )
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(request.content) == {"status": {"phase": "Ready"}}
