"""kopf's watch stream with kopf_bodies installed: no managedFields, projected kinds projected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
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


@pytest.fixture(autouse=True)
def no_projections_after() -> Iterator[None]:
    yield
    kopf_bodies.install()  # the patch is process-wide: leave no test's projection behind


async def test_listed_and_watched_objects_reach_kopf_without_managed_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert kopf_bodies.install()
    assert kopf_bodies.install()  # idempotent: wrapped once
    events = await watched(
        monkeypatch, configmap_resource(), configmap("listed", "1"), configmap("watched", "2")
    )
    objects: list[dict[str, Any]] = [
        dict(e["object"]) for e in events if isinstance(e, dict) and e["type"] != "BOOKMARK"
    ]
    assert [o["metadata"]["name"] for o in objects] == ["listed", "watched"]
    for obj in objects:
        assert "managedFields" not in obj["metadata"]
        assert obj["metadata"]["resourceVersion"] in {"1", "2"}  # everything else is kept
        assert obj["data"] == {"GATEWAY_PORT": "8181"}
    assert watching.Bookmark.LISTED in events  # kopf's own markers pass through unchanged


def keep_name_only(body: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": body["metadata"]["name"], "uid": body["metadata"]["uid"]}}


async def watched(
    monkeypatch: pytest.MonkeyPatch, resource: references.Resource, *objects: dict[str, Any]
) -> list[Any]:
    """What kopf's continuous_watch yields for one listed object and the rest watched."""
    stopper: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    listed, *rest = objects

    async def fetch_objs(**_: Any) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        yield [listed], "1"

    async def watch_objs(**_: Any) -> AsyncIterator[dict[str, Any]]:
        for obj in rest:
            yield {"type": "MODIFIED", "object": obj}
        yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}
        stopper.set_result(None)

    monkeypatch.setattr(fetching, "fetch_objs", fetch_objs)
    monkeypatch.setattr(watching, "watch_objs", watch_objs)
    return [
        event
        async for event in watching.continuous_watch(
            settings=kopf.OperatorSettings(),
            resource=resource,
            namespace=None,
            operator_pause_waiter=stopper,
        )
    ]


def with_uid(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    obj["metadata"]["uid"] = uid
    return obj


async def test_a_projected_kind_reaches_kopf_as_its_projection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert kopf_bodies.install({("", "configmaps"): keep_name_only})
    configmaps = references.Resource("", "v1", "configmaps", namespaced=True)
    events = await watched(
        monkeypatch, configmaps, with_uid(configmap("listed", "1"), "u1"),
        with_uid(configmap("watched", "2"), "u2"),
    )  # fmt: skip
    objects = [e["object"] for e in events if isinstance(e, dict)]
    assert objects[:2] == [
        {"metadata": {"name": "listed", "uid": "u1"}},
        {"metadata": {"name": "watched", "uid": "u2"}},
    ]
    assert objects[2] == {"metadata": {"resourceVersion": "9"}}  # a bookmark is no object


async def test_other_kinds_keep_their_content(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kopf_bodies.install({("", "configmaps"): keep_name_only})
    secrets = references.Resource("", "v1", "secrets", namespaced=True)
    events = await watched(monkeypatch, secrets, with_uid(configmap("listed", "1"), "u1"))
    (obj,) = [e["object"] for e in events if isinstance(e, dict) and e["type"] is None]
    assert obj["data"] == {"GATEWAY_PORT": "8181"}
    assert "managedFields" not in obj["metadata"]
    assert kopf_bodies.install()  # no projections: configmaps are kept whole again
    events = await watched(monkeypatch, configmap_resource(), with_uid(configmap("c", "1"), "u"))
    (obj,) = [e["object"] for e in events if isinstance(e, dict) and e["type"] is None]
    assert obj["data"] == {"GATEWAY_PORT": "8181"}


def configmap_resource() -> references.Resource:
    return references.Resource("", "v1", "configmaps", namespaced=True)


def test_events_without_an_object_body_pass_unchanged() -> None:
    error = {"type": "ERROR", "object": {"code": 410, "message": "too old"}}
    assert kopf_bodies.without_managed_fields(error) == error
    assert kopf_bodies.without_managed_fields(watching.Bookmark.LISTED) is watching.Bookmark.LISTED
    assert kopf_bodies.reduced(dict(error), keep_name_only) == error  # errors are not projected
