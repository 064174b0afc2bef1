"""kopf's watch stream with kopf_bodies installed: listed and watched objects lose managedFields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import fetching, watching
from kopf._cogs.structs import references

from phoenix_operator import kopf_bodies

MANAGED_FIELDS = [{"manager": "phoenix-operator", "operation": "Apply", "fieldsV1": {"f:data": {}}}]


def configmap(name: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "resourceVersion": revision,
            "labels": {"app.kubernetes.io/managed-by": "phoenix-operator"},
            "managedFields": [dict(entry) for entry in MANAGED_FIELDS],
        },
        "data": {"GATEWAY_PORT": "8181"},
    }


async def test_listed_and_watched_objects_reach_kopf_without_managed_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert kopf_bodies.install()
    assert kopf_bodies.install()  # idempotent: wrapped once
    stopper: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def fetch_objs(**_: Any) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        yield [configmap("listed", "1")], "1"

    async def watch_objs(**_: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "MODIFIED", "object": configmap("watched", "2")}
        stopper.set_result(None)  # one watch pass, then continuous_watch returns

    monkeypatch.setattr(fetching, "fetch_objs", fetch_objs)
    monkeypatch.setattr(watching, "watch_objs", watch_objs)
    resource = references.Resource("", "v1", "configmaps", namespaced=True)
    events = [
        event
        async for event in watching.continuous_watch(  # what kopf's infinite_watch calls
            settings=kopf.OperatorSettings(),
            resource=resource,
            namespace=None,
            operator_pause_waiter=stopper,
        )
    ]
    objects: list[dict[str, Any]] = [dict(e["object"]) for e in events if isinstance(e, dict)]
    assert [o["metadata"]["name"] for o in objects] == ["listed", "watched"]
    for obj in objects:
        assert "managedFields" not in obj["metadata"]
        assert obj["metadata"]["resourceVersion"] in {"1", "2"}  # everything else is kept
        assert obj["data"] == {"GATEWAY_PORT": "8181"}
    assert watching.Bookmark.LISTED in events  # kopf's own markers pass through unchanged


def test_events_without_an_object_body_pass_unchanged() -> None:
    error = {"type": "ERROR", "object": {"code": 410, "message": "too old"}}
    assert kopf_bodies.without_managed_fields(error) == error
    assert kopf_bodies.without_managed_fields(watching.Bookmark.LISTED) is watching.Bookmark.LISTED
