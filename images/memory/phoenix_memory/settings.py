"""MemorySettings: the one settings class of phoenix-memory, built once at startup.

Field names follow the original service's variables (``MEMORY_GRPC_PORT``,
``QDRANT_URL``, ``EMBEDDING_MODEL_DIM``, ...) so an existing ``.env`` works.
The original's ``MEMORY_BACKEND=mock|memory`` (an in-memory store with random
vectors) is refused with a message saying what to use instead.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from phoenix_common.errors import InvalidInput
from phoenix_common.naming import Tenancy, TwinRef, validate_memory_namespace
from phoenix_common.settings import CommonSettings
from phoenix_memory.model import NamespacePolicy

Backend = Literal["qdrant", "edge"]
EmbeddingProvider = Literal["local", "openai"]

UNSUPPORTED_BACKENDS = {
    "mock": "random vectors make ranking meaningless",
    "memory": "nothing would survive a restart",
}


class NamespacePolicySettings(BaseModel):
    """One entry of MEMORY_NAMESPACE_POLICIES (JSON), as the operator renders spec.memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_age_seconds: int | None = Field(None, ge=1)
    max_count: int | None = Field(None, ge=1)
    dedup_threshold: float | None = Field(None, gt=0, le=1)

    def policy(self) -> NamespacePolicy:
        return NamespacePolicy(
            max_age=timedelta(seconds=self.max_age_seconds) if self.max_age_seconds else None,
            max_count=self.max_count,
            dedup_threshold=self.dedup_threshold,
        )


class MemorySettings(CommonSettings):
    """Everything phoenix-memory reads from the environment."""

    grpc_host: str = Field("0.0.0.0", validation_alias="MEMORY_GRPC_HOST")  # noqa: S104
    grpc_port: int = Field(50052, ge=0, le=65535, validation_alias="MEMORY_GRPC_PORT")
    metrics_port: int = Field(9152, ge=0, le=65535, validation_alias="MEMORY_METRICS_PORT")

    backend: Backend = Field(
        "qdrant",
        validation_alias="MEMORY_BACKEND",
        description="qdrant: a Qdrant server; "
        "edge: Qdrant Edge in-process, persisted under MEMORY_DATA_DIR.",
    )
    tenancy: Tenancy = Field(
        "collection",
        validation_alias="MEMORY_TENANCY",
        description="collection: one collection per memory namespace; payload: one shared "
        "collection per vector size, every read and write filtered by the tenant key.",
    )
    namespace_policies: dict[str, NamespacePolicySettings] = Field(
        default_factory=dict,
        validation_alias="MEMORY_NAMESPACE_POLICIES",
        description='JSON: {"<memory namespace>": {"max_age_seconds", "max_count", '
        '"dedup_threshold"}}; retention and near-duplicate handling per namespace.',
    )
    retention_interval_s: float = Field(
        300.0, gt=0, validation_alias="MEMORY_RETENTION_INTERVAL_SECONDS"
    )
    backup_interval_s: float = Field(
        0.0,
        ge=0,
        validation_alias="MEMORY_BACKUP_INTERVAL_SECONDS",
        description="0 disables scheduled backups.",
    )
    backup_keep: int = Field(7, ge=1, validation_alias="MEMORY_BACKUP_KEEP")
    backup_dir: Path = Field(
        Path(".phoenix/memory-backups"),
        validation_alias="MEMORY_BACKUP_DIR",
        description="edge backend: where backups go (a Qdrant server keeps its snapshots).",
    )
    qdrant_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:6334"),
        validation_alias="QDRANT_URL",
        description="Qdrant's gRPC endpoint (port 6334 by default).",
    )
    qdrant_api_key: SecretStr | None = Field(None, validation_alias="QDRANT_API_KEY")
    qdrant_connect_attempts: int = Field(10, ge=1, validation_alias="QDRANT_CONNECT_ATTEMPTS")
    qdrant_connect_retry_delay_ms: int = Field(
        1000, ge=0, validation_alias="QDRANT_CONNECT_RETRY_DELAY_MS"
    )
    qdrant_timeout_s: float = Field(5.0, gt=0, validation_alias="QDRANT_TIMEOUT_SECONDS")
    heartbeat_interval_s: float = Field(
        15.0, gt=0, validation_alias="MEMORY_HEARTBEAT_INTERVAL_SECONDS"
    )
    data_dir: Path = Field(Path(".phoenix/memory"), validation_alias="MEMORY_DATA_DIR")

    twin_namespace: str = Field("local", validation_alias="TWIN_NAMESPACE")
    twin_name: str = Field("local", validation_alias="TWIN_NAME")

    embedding_provider: EmbeddingProvider = Field("local", validation_alias="EMBEDDING_PROVIDER")
    embedding_model_dim: int = Field(384, ge=1, le=65536, validation_alias="EMBEDDING_MODEL_DIM")
    embedding_url: AnyHttpUrl | None = Field(
        None,
        validation_alias="EMBEDDING_URL",
        description="Base URL of an OpenAI-compatible API; <url>/embeddings is called.",
    )
    embedding_api_key: SecretStr | None = Field(None, validation_alias="EMBEDDING_API_KEY")
    embedding_model: str = Field(
        "text-embedding-3-small",
        validation_alias="EMBEDDING_MODEL",
        description="Model name sent to the OpenAI-compatible API.",
    )
    embedding_timeout_s: float = Field(30.0, gt=0, validation_alias="EMBEDDING_TIMEOUT_SECONDS")
    embedding_batch_size: int = Field(64, ge=1, le=2048, validation_alias="EMBEDDING_BATCH_SIZE")

    @field_validator("backend", mode="before")
    @classmethod
    def _refuse_original_mock_backends(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value in UNSUPPORTED_BACKENDS:
                raise ValueError(
                    f"MEMORY_BACKEND={value} is not supported ({UNSUPPORTED_BACKENDS[value]}); "
                    "use MEMORY_BACKEND=edge for an embedded store on disk, or qdrant"
                )
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        try:
            self.twin()
        except InvalidInput as err:
            raise ValueError(f"TWIN_NAMESPACE/TWIN_NAME: {err}") from err
        if self.embedding_provider == "openai" and self.embedding_url is None:
            raise ValueError("EMBEDDING_PROVIDER=openai needs EMBEDDING_URL")
        for namespace in self.namespace_policies:
            try:
                validate_memory_namespace(namespace)
            except InvalidInput as err:
                raise ValueError(f"MEMORY_NAMESPACE_POLICIES: {err}") from err
        if self.backup_interval_s and self.tenancy == "payload":
            raise ValueError(
                "MEMORY_BACKUP_INTERVAL_SECONDS needs MEMORY_TENANCY=collection: the shared "
                "collection of payload mode holds every tenant, back it up on the Qdrant side"
            )
        return self

    def policies(self) -> dict[str, NamespacePolicy]:
        return {ns: entry.policy() for ns, entry in self.namespace_policies.items()}

    @classmethod
    def load(cls, **overrides: Any) -> MemorySettings:
        """Read the environment (and .env); ``overrides`` win, by field name or variable name."""
        return cls(**overrides)

    def twin(self) -> TwinRef:
        """The tenant this process serves (TWIN_NAMESPACE / TWIN_NAME)."""
        return TwinRef(self.twin_namespace, self.twin_name)
