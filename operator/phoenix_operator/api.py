"""The PhoenixTwin API as typed models: the spec parsed once, the status the operator writes.

The CRD's OpenAPI schema (crds/phoenixtwin.io_phoenixtwins.yaml) is what the
API server enforces; these models mirror it so a handler never digs through raw
dicts. Defaults here equal the schema's defaults, so a twin stored before a
default existed still parses to the same spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from phoenix_common.errors import InvalidInput
from phoenix_common.naming import (
    DEFAULT_MEMORY_NAMESPACE,
    Tenancy,
    TwinRef,
    validate_memory_namespace,
)

GROUP = "phoenixtwin.io"
VERSION = "v1alpha1"
PLURAL = "phoenixtwins"
KIND = "PhoenixTwin"
API_VERSION = f"{GROUP}/{VERSION}"

FINALIZER = f"{GROUP}/finalizer"
SKIP_RECLAIM_ANNOTATION = f"{GROUP}/skip-reclaim"
MAX_TWIN_NAME = 40

Component = Literal["gateway", "orchestrator", "memory", "tools"]
COMPONENTS: tuple[Component, ...] = ("gateway", "orchestrator", "memory", "tools")

ConditionType = Literal["Ready", "Progressing", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Suspended"]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class SecretKeyRef(_Model):
    """A key in a Secret of the twin's namespace."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class ResourceList(_Model):
    cpu: str | None = None
    memory: str | None = None


class Resources(_Model):
    requests: ResourceList = ResourceList(cpu="50m", memory="128Mi")
    limits: ResourceList = ResourceList(memory="512Mi")


class ComponentSpec(_Model):
    """Image, replicas and resources of one component."""

    image: str | None = None
    tag: str | None = None
    replicas: int = Field(1, ge=0, le=20)
    resources: Resources = Resources()


class Jwt(_Model):
    issuer: str
    audience: str
    jwks_url: str


class GatewayAuth(_Model):
    api_key_secret_ref: SecretKeyRef | None = None
    jwt: Jwt | None = None


class GatewaySpec(ComponentSpec):
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    auth: GatewayAuth = GatewayAuth()
    telemetry_url: str | None = None


# The orchestrator's approval store is one SQLite file on its volume: one writer.
MAX_ORCHESTRATOR_REPLICAS = 1


class OrchestratorStorage(_Model):
    """The orchestrator's PersistentVolumeClaim (immutable: a StatefulSet's claim template)."""

    size: str = Field("1Gi", max_length=32)
    storage_class_name: str | None = Field(None, min_length=1, max_length=253)


class OrchestratorSpec(ComponentSpec):
    """``replicas`` parses up to 20 so a twin stored before the CRD's limit of 1 still reads;
    the rendering runs at most MAX_ORCHESTRATOR_REPLICAS and the status says so."""

    storage: OrchestratorStorage = OrchestratorStorage()


class QdrantSpec(_Model):
    url: str | None = None
    api_key_secret_ref: SecretKeyRef | None = None
    # collection: a collection per memory namespace; payload: the endpoint's shared
    # collection, filtered by tenant. None: the operator's default for its default endpoint.
    tenancy: Tenancy | None = None

    def resolved_tenancy(self, default: Tenancy) -> Tenancy:
        """The endpoint's mode: the spec's, else the operator's default for its own default
        endpoint (``default``), else collection."""
        if self.tenancy is not None:
            return self.tenancy
        return default if self.url is None else "collection"


DURATION = re.compile(r"^(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")


def duration_seconds(value: str) -> int:
    """Seconds in a duration such as 30d, 12h, 1h30m or 90s; ValueError if malformed."""
    match = DURATION.match(value)
    if not value or match is None:
        raise ValueError(f"{value!r} is not a duration like 30d, 12h, 1h30m or 90s")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return total


class NamespacePolicySpec(_Model):
    """Retention and near-duplicate handling of one memory namespace."""

    namespace: str
    max_age: str | None = None
    max_count: int | None = Field(None, ge=1)
    dedup_threshold: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _valid(self) -> NamespacePolicySpec:
        validate_memory_namespace(self.namespace)
        if self.max_age is not None:
            duration_seconds(self.max_age)
        return self


class BackupSpec(_Model):
    """Scheduled snapshots of the twin's collections (collection tenancy)."""

    every: str = "24h"
    keep: int = Field(7, ge=1, le=1000)

    @model_validator(mode="after")
    def _valid(self) -> BackupSpec:
        duration_seconds(self.every)
        return self


class EmbeddingSpec(_Model):
    provider: Literal["local", "openai"] = "local"
    dimension: int = Field(384, ge=1, le=65536)
    url: str | None = None
    model: str | None = None
    api_key_secret_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _url_when_remote(self) -> EmbeddingSpec:
        if self.provider == "openai" and not self.url:
            raise ValueError("memory.embedding.provider openai requires memory.embedding.url")
        return self


class MemorySpec(ComponentSpec):
    qdrant: QdrantSpec = QdrantSpec()
    namespaces: tuple[str, ...] = (DEFAULT_MEMORY_NAMESPACE,)
    embedding: EmbeddingSpec = EmbeddingSpec()
    reclaim_policy: Literal["Retain", "Delete"] = "Retain"
    policies: tuple[NamespacePolicySpec, ...] = ()
    backup: BackupSpec | None = None

    @model_validator(mode="after")
    def _valid_namespaces(self) -> MemorySpec:
        for namespace in self.namespaces:
            validate_memory_namespace(namespace)
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError(f"memory.namespaces must be unique, got {list(self.namespaces)}")
        named = [policy.namespace for policy in self.policies]
        if len(set(named)) != len(named):
            raise ValueError(f"memory.policies name a namespace twice: {named}")
        if self.backup is not None and self.qdrant.tenancy == "payload":
            raise ValueError(
                "memory.backup needs collection tenancy: a shared collection holds other "
                "tenants and is backed up where that Qdrant is run"
            )
        return self


class ToolsPolicy(_Model):
    allowed: tuple[str, ...] = ("command_exec", "file_write", "vector_query")
    programs: tuple[str, ...] = ("*",)
    restricted: tuple[str, ...] = ("rm", "delete", "format", "shutdown", "reboot")


class ToolsSpec(ComponentSpec):
    sandbox: Literal["bwrap", "cwd"] = "bwrap"
    timeout_ms: int = Field(10000, ge=100, le=600000)
    policy: ToolsPolicy = ToolsPolicy()


LLM_DEFAULT_URLS = {
    "openrouter": "https://openrouter.ai/api/v1/chat/completions",
    "openai": "https://api.openai.com/v1/chat/completions",
}


class LlmSpec(_Model):
    provider: Literal["mock", "openrouter", "openai"] = "mock"
    model: str = "google/gemini-2.0-flash-exp"
    base_url: str | None = None
    api_key_secret_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _key_when_remote(self) -> LlmSpec:
        if self.provider != "mock" and self.api_key_secret_ref is None:
            raise ValueError(f"llm.provider {self.provider} requires llm.apiKeySecretRef")
        return self

    @property
    def url(self) -> str | None:
        return self.base_url or LLM_DEFAULT_URLS.get(self.provider)


class TwinSpec(_Model):
    """spec of a PhoenixTwin; ``TwinSpec()`` is the working twin ``spec: {}`` yields."""

    suspend: bool = False
    network_policy: Literal["Managed", "Unmanaged"] = "Managed"
    gateway: GatewaySpec = GatewaySpec()
    orchestrator: OrchestratorSpec = OrchestratorSpec()
    memory: MemorySpec = MemorySpec()
    tools: ToolsSpec = ToolsSpec()
    llm: LlmSpec = LlmSpec()

    def component(self, name: Component) -> ComponentSpec:
        specs: dict[Component, ComponentSpec] = {
            "gateway": self.gateway,
            "orchestrator": self.orchestrator,
            "memory": self.memory,
            "tools": self.tools,
        }
        return specs[name]


@dataclass(frozen=True)
class Twin:
    """One PhoenixTwin as the operator sees it: identity, generation and the parsed spec."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: TwinSpec
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> TwinRef:
        return TwinRef(self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Twin:
        """Parse a PhoenixTwin object; raise InvalidInput naming the offending field."""
        meta = body.get("metadata", {})
        name = str(meta.get("name", ""))
        if len(name) > MAX_TWIN_NAME:
            raise InvalidInput(f"metadata.name {name!r} is longer than {MAX_TWIN_NAME} characters")
        try:
            spec = TwinSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "spec"
            raise InvalidInput(f"spec.{where}: {first['msg']}") from None
        twin = cls(
            namespace=str(meta.get("namespace", "")),
            name=name,
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation", 0)),
            spec=spec,
            annotations=dict(meta.get("annotations") or {}),
        )
        _ = twin.ref  # validates namespace and name as DNS labels
        return twin


# --------------------------------------------------------------------------- status


class _StatusModel(BaseModel):
    """Status parts: camelCase on the wire, exactly the fields the CRD's status schema declares."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    def wire(self) -> dict[str, Any]:
        """The JSON the API server stores (aliases, optional fields left out when unset)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(_StatusModel):
    """A kstatus condition; ``lastTransitionTime`` moves only when ``status`` does."""

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str
    observed_generation: int
    last_transition_time: str | None = None


class ComponentStatus(_StatusModel):
    """One component's rollout, read from its Deployment."""

    ready: bool
    replicas: int
    ready_replicas: int
    updated_replicas: int
    config_hash: str | None = None


class TwinStatus(_StatusModel):
    """``status`` of a PhoenixTwin; phoenix-operator is its only writer."""

    observed_generation: int = 0
    phase: Phase = "Pending"
    components_ready: str = f"0/{len(COMPONENTS)}"
    components: dict[Component, ComponentStatus] = Field(default_factory=dict)
    collections: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    gateway_api_key_secret: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TwinStatus | None:
        """The status stored on a twin, or None when there is none (or it is not ours)."""
        raw = body.get("status")
        if not raw:
            return None
        try:
            return cls.model_validate(raw)
        except ValidationError:
            return None

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)
