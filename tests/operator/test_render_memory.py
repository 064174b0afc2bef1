"""The memory service's tenancy, retention, dedup and backup settings, rendered from spec.memory."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from phoenix_common.errors import InvalidInput
from phoenix_memory.settings import MemorySettings
from phoenix_operator.api import Twin, duration_seconds
from phoenix_operator.render import RenderContext, config


def test_policies_and_backups_become_the_memory_services_settings(
    twin_factory: Callable[..., Twin], ctx: RenderContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = twin_factory(
        {
            "memory": {
                "policies": [
                    {"namespace": "logs", "maxAge": "30d", "maxCount": 1000},
                    {"namespace": "threat.intel", "dedupThreshold": 0.97},
                ],
                "backup": {"every": "6h", "keep": 3},
            }
        }
    )
    env = config.settings_env(twin, "memory", ctx)
    assert json.loads(env["MEMORY_NAMESPACE_POLICIES"]) == {
        "logs": {"max_age_seconds": 30 * 86400, "max_count": 1000},
        "threat.intel": {"dedup_threshold": 0.97},
    }
    assert (env["MEMORY_BACKUP_INTERVAL_SECONDS"], env["MEMORY_BACKUP_KEEP"]) == ("21600", "3")
    # The memory service reads exactly what was rendered, from its environment.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = MemorySettings.load()
    assert settings.policies()["logs"].max_count == 1000
    assert settings.backup_interval_s == 21600


def test_tenancy_follows_the_endpoint(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    shared_default = replace(ctx, default_qdrant_tenancy="payload")
    plain = twin_factory({})
    assert config.settings_env(plain, "memory", shared_default)["MEMORY_TENANCY"] == "payload"
    own = twin_factory({"memory": {"qdrant": {"url": "http://q.db:6334"}}})
    assert config.settings_env(own, "memory", shared_default)["MEMORY_TENANCY"] == "collection"
    chosen = twin_factory({"memory": {"qdrant": {"tenancy": "payload"}}})
    assert config.settings_env(chosen, "memory", ctx)["MEMORY_TENANCY"] == "payload"
    # A shared collection is not one twin's to back up: no backup settings are rendered.
    backed = twin_factory({"memory": {"backup": {}}})
    assert "MEMORY_BACKUP_INTERVAL_SECONDS" not in config.settings_env(
        backed, "memory", shared_default
    )


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ({"policies": [{"namespace": "a/b"}]}, "namespace 'a/b' is invalid"),
        ({"policies": [{"namespace": "a"}, {"namespace": "a"}]}, "twice"),
        ({"policies": [{"namespace": "a", "maxAge": "soon"}]}, "not a duration"),
        ({"qdrant": {"tenancy": "payload"}, "backup": {}}, "collection tenancy"),
    ],
)
def test_bad_memory_policies_are_refused(
    twin_factory: Callable[..., Twin], memory: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        twin_factory({"memory": memory})


def test_durations() -> None:
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("2d") == 172800
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("")
    with pytest.raises(ValueError, match="positive"):
        duration_seconds("0s")
