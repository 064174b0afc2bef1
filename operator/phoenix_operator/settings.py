"""OperatorSettings: the one settings class of phoenix-operator, built once in ``__main__``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from phoenix_common.naming import Tenancy
from phoenix_common.settings import CommonSettings


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class OperatorSettings(CommonSettings):
    """Everything phoenix-operator reads from the environment (``PHOENIX_OPERATOR_*``)."""

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="PHOENIX_OPERATOR_NAMESPACES",
        description="Comma-separated namespaces (kopf patterns allowed) to serve; "
        "empty means every namespace (cluster-wide).",
    )
    peering: str | None = Field(
        None,
        validation_alias="PHOENIX_OPERATOR_PEERING",
        description="kopf peering name for active/passive HA; unset runs standalone "
        "(one replica, strategy Recreate).",
    )
    priority: int = Field(0, validation_alias="PHOENIX_OPERATOR_PRIORITY")
    metrics_port: int = Field(
        9090, ge=0, le=65535, validation_alias="PHOENIX_OPERATOR_METRICS_PORT"
    )
    health_port: int = Field(8080, ge=0, le=65535, validation_alias="PHOENIX_OPERATOR_HEALTH_PORT")
    resync_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias="PHOENIX_OPERATOR_RESYNC_SECONDS",
        description="How often every twin is re-checked against its rendered children.",
    )
    child_settle_seconds: float = Field(
        1.0,
        ge=0,
        le=30,
        validation_alias="PHOENIX_OPERATOR_CHILD_SETTLE_SECONDS",
        description="A child's watch event queues its twin once the twin's children have been "
        "quiet this long (at most 5 times this after the first event): a burst of edits is "
        "one reconcile. 0 reconciles on every event.",
    )
    max_concurrent_reconciles: int = Field(
        8,
        ge=1,
        validation_alias="PHOENIX_OPERATOR_MAX_CONCURRENT_RECONCILES",
        description="Workers of the reconcile queue: twins reconciled at the same time.",
    )
    twin_selector: str | None = Field(
        None,
        validation_alias="PHOENIX_OPERATOR_TWIN_SELECTOR",
        description="Label selector of the twins this replica serves (sharding, e.g. "
        "'phoenixtwin.io/shard=a'); unset serves every twin in scope.",
    )
    write_attempts: int = Field(
        5,
        ge=1,
        validation_alias="PHOENIX_OPERATOR_WRITE_ATTEMPTS",
        description="Attempts per API call on 429/5xx/connection errors (exponential "
        "backoff, or the server's Retry-After).",
    )
    # Small pages: kopf keeps a page's objects whole until it has queued the last one, and
    # after a restart every kind is listed at once. 50 against 500 lowered the restarted
    # operator's RSS at 200 twins from 153 to 133 MiB (docs/operator.md, Memory).
    list_chunk_size: int = Field(
        50,
        ge=1,
        validation_alias="PHOENIX_OPERATOR_LIST_CHUNK_SIZE",
        description="Page size of the watches' initial lists.",
    )
    # kopf keeps a worker (a task, its queue and the last event) for each object that had an
    # event in the last idle_timeout seconds: 5 s by kopf's default. After a restart every
    # watched object arrives within a few seconds, so nearly all of them had a worker at once,
    # and the heap that grew for them is not given back: at 300 twins 27-39 MiB above the
    # converged RSS, against none with 1 s or 0.2 s (docs/operator.md, The restart's peak,
    # third round).
    worker_idle_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        validation_alias="PHOENIX_OPERATOR_WORKER_IDLE_SECONDS",
        description="How long kopf keeps an object's worker after its last event.",
    )
    api_connections: int = Field(
        16,
        ge=1,
        le=256,
        validation_alias="PHOENIX_OPERATOR_API_CONNECTIONS",
        description="HTTP connections to the API server for the operator's writes, all kept "
        "open; further requests wait for one (kopf's watches have their own).",
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, validation_alias="PHOENIX_OPERATOR_REQUEST_TIMEOUT_SECONDS"
    )
    image_prefix: str = Field(
        "ghcr.io/phoenixtwin/phoenix-",
        validation_alias="PHOENIX_OPERATOR_IMAGE_PREFIX",
        description="Default image of component C is <prefix>C:<image tag>.",
    )
    image_tag: str = Field("0.1.0", validation_alias="PHOENIX_OPERATOR_IMAGE_TAG")
    default_qdrant_url: str = Field(
        "http://qdrant.phoenix-system.svc:6334",
        validation_alias="PHOENIX_OPERATOR_DEFAULT_QDRANT_URL",
        description="Qdrant gRPC endpoint used when a twin sets no spec.memory.qdrant.url.",
    )
    default_qdrant_api_key: SecretStr | None = Field(
        None,
        validation_alias="PHOENIX_OPERATOR_DEFAULT_QDRANT_API_KEY",
        description="API key of the default Qdrant, for the operator's own collection calls.",
    )
    default_qdrant_tenancy: Tenancy = Field(
        "collection",
        validation_alias="PHOENIX_OPERATOR_DEFAULT_QDRANT_TENANCY",
        description="Tenancy of the default Qdrant: collection (one collection per memory "
        "namespace) or payload (one shared collection, filtered by tenant); a twin's "
        "spec.memory.qdrant.tenancy wins.",
    )
    qdrant_local_path: Path | None = Field(
        None,
        validation_alias="PHOENIX_QDRANT_LOCAL_PATH",
        description="TEST ONLY: the default Qdrant becomes qdrant-client local mode under "
        "<path>/<twin namespace>; twins with an explicit url still use the network.",
    )
    qdrant_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias="PHOENIX_OPERATOR_QDRANT_TIMEOUT_SECONDS"
    )
    qdrant_retry_seconds: float = Field(
        30.0, gt=0, validation_alias="PHOENIX_OPERATOR_QDRANT_RETRY_SECONDS"
    )
    reclaim_max_attempts: int = Field(
        5,
        ge=1,
        validation_alias="PHOENIX_OPERATOR_RECLAIM_MAX_ATTEMPTS",
        description="Failed attempts to delete a twin's collections before the finalizer "
        "is released anyway (with a Warning event naming what was left behind).",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        return _split(value)
