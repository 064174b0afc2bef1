"""Configuration: the original's variables and defaults, clear errors instead of panics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from phoenix_common.settings import config_error_message
from phoenix_orchestrator.__main__ import main
from phoenix_orchestrator.settings import GrpcEndpoint, OrchestratorSettings, grpc_endpoint

_VARS = (
    "ORCHESTRATOR_HTTP_PORT",
    "MEMORY_GRPC_ADDR",
    "TOOLS_GRPC_ADDR",
    "LLM_PROVIDER",
    "OPENROUTER_API_KEY",
    "LLM_API_KEY",
    "OPENROUTER_MODEL",
    "OPENROUTER_MODEL_NAME",
    "OPENROUTER_URL",
    "APPROVAL_TTL_SECONDS",
    "ORCHESTRATOR_STATE_DIR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_original() -> None:
    settings = OrchestratorSettings(_env_file=None)
    assert settings.http_port == 8182
    assert settings.memory_endpoint == GrpcEndpoint("127.0.0.1", 50052, tls=False)
    assert settings.tools_endpoint == GrpcEndpoint("127.0.0.1", 50054, tls=False)
    assert settings.llm_provider == "mock"
    assert not settings.uses_llm
    assert settings.openrouter_model == "google/gemini-2.0-flash-exp"
    assert settings.openrouter_url == "https://openrouter.ai/api/v1/chat/completions"
    assert settings.approval_ttl_seconds == 600
    assert settings.llm_fallback_to_deterministic is True
    assert str(settings.state_dir) == ".phoenix/orchestrator"


def test_provider_is_lower_cased_and_model_name_is_a_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "OpenRouter")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test")
    monkeypatch.setenv("OPENROUTER_MODEL_NAME", "mistralai/mistral-7b-instruct:free")
    settings = OrchestratorSettings(_env_file=None)
    assert settings.llm_provider == "openrouter"
    assert settings.uses_llm
    assert settings.openrouter_model == "mistralai/mistral-7b-instruct:free"
    assert "sk-test" not in repr(settings)


def test_openrouter_model_wins_over_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_MODEL", "a/b")
    monkeypatch.setenv("OPENROUTER_MODEL_NAME", "c/d")
    assert OrchestratorSettings(_env_file=None).openrouter_model == "a/b"


def test_grpc_addresses_accept_the_original_http_form() -> None:
    assert grpc_endpoint("http://rust-memory-service:50052") == GrpcEndpoint(
        "rust-memory-service", 50052, tls=False
    )
    assert grpc_endpoint("memory:50052") == GrpcEndpoint("memory", 50052, tls=False)
    assert grpc_endpoint("https://memory.ns.svc:443") == GrpcEndpoint(
        "memory.ns.svc", 443, tls=True
    )
    assert grpc_endpoint("http://[::1]:50052") == GrpcEndpoint("::1", 50052, tls=False)
    assert grpc_endpoint("http://memory:50052/") == GrpcEndpoint("memory", 50052, tls=False)
    with pytest.raises(ValueError, match="host:port"):
        grpc_endpoint("http://memory")


@pytest.mark.parametrize(
    "address",
    [
        "http://memory:50052/memory.MemoryService",
        "http://memory:50052?tls=1",
        "http://memory:50052#x",
    ],
)
def test_grpc_addresses_with_parts_a_channel_would_drop_are_refused(address: str) -> None:
    """A path, query or fragment would be silently ignored by the channel."""
    with pytest.raises(ValueError, match="nothing after the port"):
        grpc_endpoint(address)
    with pytest.raises(ValueError, match="memory_grpc_addr"):
        OrchestratorSettings(_env_file=None, memory_grpc_addr=address)


def test_a_grpc_address_with_a_user_is_refused_without_echoing_it() -> None:
    """What the process prints on exit (config_error_message) names the rule, not the value."""
    with pytest.raises(ValidationError, match="no user") as raised:
        OrchestratorSettings(_env_file=None, memory_grpc_addr="http://user:secret@memory:50052")
    printed = config_error_message("orchestrator", raised.value)
    assert "memory_grpc_addr" in printed
    assert "no user" in printed
    assert "secret" not in printed


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ORCHESTRATOR_HTTP_PORT": "eighty"}, "ORCHESTRATOR_HTTP_PORT"),
        ({"ORCHESTRATOR_HTTP_PORT": "70000"}, "ORCHESTRATOR_HTTP_PORT"),
        ({"LLM_PROVIDER": "openrouter"}, "OPENROUTER_API_KEY"),
        ({"LLM_PROVIDER": "ollama"}, "LLM_PROVIDER"),
        ({"MEMORY_GRPC_ADDR": "memory"}, "MEMORY_GRPC_ADDR"),
    ],
)
def test_invalid_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    needle: str,
) -> None:
    """Defect 14: a missing key with provider openrouter is a clear error, not a panic."""
    monkeypatch.chdir("/")  # no .env file
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert needle in err


def test_secret_is_not_echoed_in_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-very-secret")
    monkeypatch.setenv("ORCHESTRATOR_HTTP_PORT", "0")
    assert main([]) == 2
    assert "sk-very-secret" not in capsys.readouterr().err


def test_unwritable_state_dir_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.chdir("/")
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(blocker / "state"))
    assert main([]) == 2
    assert "ORCHESTRATOR_STATE_DIR" in capsys.readouterr().err


def test_a_chatting_orchestrator_does_not_import_grpc_or_the_llm_client() -> None:
    """The gRPC client loads on the first approved run, httpx with an LLM provider: resident memory.

    grpc (grpcio) never loads without tracing: test_backends checks the approved path.
    """
    probe = (
        "import sys, phoenix_orchestrator.app; "
        "print(' '.join(m for m in ('grpc', 'grpclib', 'httpx', 'tenacity') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
