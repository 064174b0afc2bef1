"""MemorySettings keeps the original's variables and refuses what it no longer supports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from phoenix_memory.settings import MemorySettings

from .conftest import PHOENIX_MEMORY, service_env

ORIGINAL_ENV = ("MEMORY_", "QDRANT_", "EMBEDDING_", "TWIN_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith(ORIGINAL_ENV):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_original() -> None:
    settings = MemorySettings.load()
    assert settings.grpc_port == 50052
    assert settings.backend == "qdrant"
    assert str(settings.qdrant_url) == "http://127.0.0.1:6334/"
    assert settings.qdrant_connect_attempts == 10
    assert settings.qdrant_connect_retry_delay_ms == 1000
    assert settings.embedding_model_dim == 384
    assert settings.embedding_provider == "local"
    assert settings.metrics_port == 9152
    assert settings.data_dir == Path(".phoenix/memory")
    assert (settings.twin().namespace, settings.twin().name) == ("local", "local")


def test_original_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_GRPC_PORT", "6000")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant-db:6334")
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret")
    monkeypatch.setenv("QDRANT_CONNECT_ATTEMPTS", "3")
    monkeypatch.setenv("MEMORY_BACKEND", "Edge")
    settings = MemorySettings.load()
    assert (settings.grpc_port, settings.qdrant_connect_attempts, settings.backend) == (
        6000,
        3,
        "edge",
    )
    assert settings.qdrant_api_key is not None
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("backend", ["mock", "memory"])
def test_original_in_memory_backends_are_refused(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("MEMORY_BACKEND", backend)
    with pytest.raises(ValidationError, match=f"MEMORY_BACKEND={backend} is not supported"):
        MemorySettings.load()


def test_openai_provider_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_PROVIDER", "openai")
    with pytest.raises(ValidationError, match="EMBEDDING_PROVIDER=openai needs EMBEDDING_URL"):
        MemorySettings.load()


def test_twin_must_be_dns_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_NAME", "Not_A_Label")
    with pytest.raises(ValidationError, match="twin name 'Not_A_Label' must be a DNS label"):
        MemorySettings.load()


def test_bad_configuration_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PHOENIX_MEMORY)],
        check=False,
        env=service_env(MEMORY_BACKEND="mock", MEMORY_GRPC_PORT="70000"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid configuration" in done.stderr
    assert "MEMORY_BACKEND=mock is not supported" in done.stderr
    assert "MEMORY_GRPC_PORT" in done.stderr


def test_tenancy_and_namespace_policies_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_TENANCY", "payload")
    monkeypatch.setenv(
        "MEMORY_NAMESPACE_POLICIES",
        '{"threat.intel": {"max_age_seconds": 60, "dedup_threshold": 0.9},'
        ' "ops": {"max_count": 5}}',
    )
    settings = MemorySettings.load()
    assert settings.tenancy == "payload"
    policies = settings.policies()
    assert policies["threat.intel"].max_age is not None
    assert policies["threat.intel"].max_age.total_seconds() == 60
    assert (policies["ops"].max_count, policies["ops"].dedup_threshold) == (5, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEMORY_TENANCY": "shared"}, "MEMORY_TENANCY"),
        ({"MEMORY_NAMESPACE_POLICIES": '{"a/b": {}}'}, "namespace 'a/b' is invalid"),
        ({"MEMORY_NAMESPACE_POLICIES": '{"a": {"dedup_threshold": 1.5}}'}, "dedup_threshold"),
        ({"MEMORY_NAMESPACE_POLICIES": '{"a": {"max_days": 3}}'}, "max_days"),
        (
            {"MEMORY_TENANCY": "payload", "MEMORY_BACKUP_INTERVAL_SECONDS": "60"},
            "needs MEMORY_TENANCY=collection",
        ),
    ],
)
def test_bad_tenancy_policy_and_backup_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        MemorySettings.load()
