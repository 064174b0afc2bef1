"""OrchestratorSettings: every environment variable the orchestrator reads.

Names follow the original system (``ORCHESTRATOR_HTTP_PORT``, ``MEMORY_GRPC_ADDR``,
``LLM_PROVIDER``, ``OPENROUTER_*``); the rest are new and documented in
docs/orchestrator.md. Built once in ``__main__`` and passed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from phoenix_common.settings import CommonSettings
from phoenix_orchestrator.approvals.policy import ApprovalPolicy
from phoenix_orchestrator.planning.usage import ModelPrice
from phoenix_orchestrator.tool_checks import ToolPolicy

ProviderName = Literal["mock", "deterministic", "openrouter", "openai"]
ResponseFormatMode = Literal["auto", "json_schema", "json_object"]

DETERMINISTIC_PROVIDERS = frozenset({"mock", "deterministic"})


class GrpcEndpoint(NamedTuple):
    """Where a gRPC service listens, and whether the channel uses TLS (``https://``)."""

    host: str  # an IPv6 address without brackets
    port: int
    tls: bool


def grpc_endpoint(address: str) -> GrpcEndpoint:
    """``http://host:port`` (the original's form), ``https://host:port`` or ``host:port``."""
    parts = urlsplit(address if "://" in address else f"http://{address}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ValueError(f"expected http://host:port or https://host:port, got {address!r}")
    # A gRPC channel has nowhere to put these: refuse them rather than drop them unseen.
    if parts.username is not None:  # not echoed: it may hold a password
        raise ValueError("expected http://host:port or https://host:port with no user in it")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"expected http://host:port or https://host:port with nothing after the port, "
            f"got {address!r}"
        )
    return GrpcEndpoint(parts.hostname, parts.port, tls=parts.scheme == "https")


class OrchestratorSettings(CommonSettings):
    """The orchestrator's configuration; invalid values stop startup with a clear message."""

    http_host: str = Field("0.0.0.0", validation_alias="ORCHESTRATOR_HTTP_HOST")  # noqa: S104 - a pod's port
    http_port: int = Field(8182, ge=1, le=65535, validation_alias="ORCHESTRATOR_HTTP_PORT")

    memory_grpc_addr: str = Field("http://127.0.0.1:50052", validation_alias="MEMORY_GRPC_ADDR")
    tools_grpc_addr: str = Field("http://127.0.0.1:50054", validation_alias="TOOLS_GRPC_ADDR")
    memory_rpc_timeout_seconds: float = Field(
        5.0, gt=0, le=300, validation_alias="MEMORY_RPC_TIMEOUT_SECONDS"
    )
    # The tools service kills a command after TOOLS_EXEC_TIMEOUT_MS (10 s by
    # default); the deadline leaves it a margin to report that timeout itself.
    tools_rpc_timeout_seconds: float = Field(
        15.0, gt=0, le=3600, validation_alias="TOOLS_RPC_TIMEOUT_SECONDS"
    )
    memory_top_k: int = Field(10, ge=1, le=100, validation_alias="MEMORY_TOP_K")

    llm_provider: ProviderName = Field("mock", validation_alias="LLM_PROVIDER")
    openrouter_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENROUTER_API_KEY", "LLM_API_KEY")
    )
    openrouter_model: str = Field(
        "google/gemini-2.0-flash-exp",
        min_length=1,
        validation_alias=AliasChoices("OPENROUTER_MODEL", "OPENROUTER_MODEL_NAME"),
    )
    openrouter_url: str = Field(
        "https://openrouter.ai/api/v1/chat/completions", validation_alias="OPENROUTER_URL"
    )
    llm_timeout_seconds: float = Field(60.0, gt=0, le=600, validation_alias="LLM_TIMEOUT_SECONDS")
    llm_max_attempts: int = Field(3, ge=1, le=10, validation_alias="LLM_MAX_ATTEMPTS")
    llm_retry_backoff_seconds: float = Field(
        0.5, ge=0, le=30, validation_alias="LLM_RETRY_BACKOFF_SECONDS"
    )
    llm_temperature: float = Field(0.1, ge=0, le=2, validation_alias="LLM_TEMPERATURE")
    llm_response_format: ResponseFormatMode = Field("auto", validation_alias="LLM_RESPONSE_FORMAT")
    llm_fallback_to_deterministic: bool = Field(
        True, validation_alias="LLM_FALLBACK_TO_DETERMINISTIC"
    )
    llm_http_referer: str | None = Field(None, validation_alias="LLM_HTTP_REFERER")
    llm_app_title: str = Field("PhoenixTwin", validation_alias="LLM_APP_TITLE")
    system_prompt_file: Path | None = Field(None, validation_alias="SYSTEM_PROMPT_FILE")

    approval_ttl_seconds: int = Field(
        600, ge=1, le=7 * 24 * 3600, validation_alias="APPROVAL_TTL_SECONDS"
    )
    approval_retention_days: int = Field(
        30, ge=0, le=3650, validation_alias="APPROVAL_RETENTION_DAYS"
    )
    state_dir: Path = Field(
        Path(".phoenix/orchestrator"), validation_alias="ORCHESTRATOR_STATE_DIR"
    )
    # spec.approvals as the operator renders it (JSON); the default asks for everything.
    approval_policy: ApprovalPolicy = Field(
        default_factory=ApprovalPolicy, validation_alias="APPROVAL_POLICY"
    )
    approval_sweep_seconds: float = Field(
        5.0, ge=0.01, le=3600, validation_alias="APPROVAL_SWEEP_INTERVAL_SECONDS"
    )
    # The tools service's policy document, to check calls before a human sees them.
    tool_policy_inline: ToolPolicy | None = Field(None, validation_alias="TOOL_POLICY")
    tool_policy_file: Path | None = Field(None, validation_alias="TOOLS_POLICY_FILE")
    agent_max_steps: int = Field(5, ge=1, le=50, validation_alias="AGENT_MAX_STEPS")
    llm_stream: bool = Field(True, validation_alias="LLM_STREAM")
    # USD per million tokens, by model: {"<model>": {"inputPerMillion": 0.1, ...}}.
    llm_prices: dict[str, ModelPrice] = Field(default_factory=dict, validation_alias="LLM_PRICES")
    _tool_policy: ToolPolicy | None = PrivateAttr(None)

    @field_validator("llm_provider", "llm_response_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("memory_grpc_addr", "tools_grpc_addr")
    @classmethod
    def _valid_grpc_address(cls, value: str) -> str:
        grpc_endpoint(value)
        return value

    @field_validator("openrouter_url")
    @classmethod
    def _valid_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http(s) URL of a chat-completions endpoint, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _llm_needs_a_key(self) -> OrchestratorSettings:
        if self.uses_llm and (
            self.openrouter_api_key is None or not self.openrouter_api_key.get_secret_value()
        ):
            raise ValueError(
                f"LLM_PROVIDER={self.llm_provider} needs an API key: set OPENROUTER_API_KEY "
                "(or LLM_API_KEY), or set LLM_PROVIDER=mock for the deterministic planner"
            )
        return self

    @model_validator(mode="after")
    def _tool_policy_from_file(self) -> OrchestratorSettings:
        self._tool_policy = self.tool_policy_inline
        if self._tool_policy is None and self.tool_policy_file is not None:
            try:
                text = self.tool_policy_file.read_text(encoding="utf-8")
            except OSError as err:
                raise ValueError(
                    f"TOOLS_POLICY_FILE {self.tool_policy_file}: cannot read: {err.strerror}"
                ) from None
            try:
                self._tool_policy = ToolPolicy.model_validate_json(text)
            except ValidationError as err:
                raise ValueError(
                    f"TOOLS_POLICY_FILE {self.tool_policy_file}: not a tools policy "
                    f"document: {err.errors()[0]['msg']}"
                ) from None
        return self

    @property
    def tool_policy(self) -> ToolPolicy | None:
        """TOOL_POLICY, else the document in TOOLS_POLICY_FILE, else None (not checked here)."""
        return self._tool_policy

    @property
    def uses_llm(self) -> bool:
        return self.llm_provider not in DETERMINISTIC_PROVIDERS

    @property
    def memory_endpoint(self) -> GrpcEndpoint:
        return grpc_endpoint(self.memory_grpc_addr)

    @property
    def tools_endpoint(self) -> GrpcEndpoint:
        return grpc_endpoint(self.tools_grpc_addr)

    @property
    def database_path(self) -> Path:
        return self.state_dir / "approvals.sqlite3"
