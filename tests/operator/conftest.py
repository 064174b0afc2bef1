"""Fixtures of the operator's unit tests: twins built from bodies, as the API server stores them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from phoenix_operator.api import Twin
from phoenix_operator.render import RenderContext


def make_twin(spec: dict[str, Any] | None = None, name: str = "alice", **meta: Any) -> Twin:
    return Twin.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "uid": "0e4ea930-e3a8-490f-893e-cc436e52e6a8",
                "generation": 3,
                **meta,
            },
            "spec": spec or {},
        }
    )


@pytest.fixture
def twin_factory() -> Callable[..., Twin]:
    return make_twin


@pytest.fixture
def twin() -> Twin:
    return make_twin()


@pytest.fixture
def ctx() -> RenderContext:
    return RenderContext(
        image_prefix="registry.example/phoenix-",
        image_tag="1.2.3",
        default_qdrant_url="http://qdrant.db.svc:6334",
    )
