"""Names shared by the memory service and the operator: where a tenant's memories live in Qdrant.

A tenant is one memory namespace of one twin: (twin's Kubernetes namespace, twin
name, memory namespace). Two tenancy modes place it (per Qdrant endpoint):

``collection`` (the original's layout): one collection per tenant::

    phx.<kubernetes namespace>.<twin name>.<memory namespace>

``payload``: one shared collection per vector size, ``phx_shared_<dim>``, every
point carrying its tenant key ``<kubernetes namespace>/<twin name>/<memory
namespace>`` (payload field ``tenant``, indexed with ``is_tenant``) and its twin
key ``<kubernetes namespace>/<twin name>`` (field ``twin``, for reclaim).

Why both encodings are injective: the twin's namespace and name are DNS labels
(``[a-z0-9-]``, never a ``.`` or ``/``), and a memory namespace is
``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``: it may contain dots (the original's
``threat.intel``) but never a ``/``. Since the first two fields cannot contain
the separator, everything after the third separator is the memory namespace:
``parse_collection_name`` and ``parse_tenant_key`` invert the names exactly, so
no two tenants share a name. Collections named before dots were allowed keep
their names (a dot-free namespace encodes as before), so nothing migrates.
Every name is one Qdrant accepts and one path component on disk (Qdrant Edge):
at most 4 + 63 + 1 + 63 + 1 + 64 = 196 characters, none of ``<>:"/\\|?*``,
never ``.`` or ``..``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from phoenix_common.errors import InvalidInput

COLLECTION_PREFIX = "phx"
SHARED_COLLECTION_PREFIX = "phx_shared_"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MEMORY_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_MEMORY_NAMESPACE = "default"

Tenancy = Literal["collection", "payload"]
TENANCIES: tuple[Tenancy, ...] = ("collection", "payload")
# Payload fields of the shared collection (payload mode); both keyword-indexed.
TENANT_FIELD = "tenant"
TWIN_FIELD = "twin"


@dataclass(frozen=True)
class TwinRef:
    """Which PhoenixTwin (tenant) a process serves: its Kubernetes namespace and name."""

    namespace: str
    name: str

    def __post_init__(self) -> None:
        for field, value in (("namespace", self.namespace), ("name", self.name)):
            if not DNS_LABEL.match(value):
                raise InvalidInput(
                    f"twin {field} {value!r} must be a DNS label: lower-case letters, digits "
                    "and '-', at most 63 characters, starting and ending with a letter or digit"
                )

    @property
    def key(self) -> str:
        """The twin key of payload mode: ``<kubernetes namespace>/<twin name>``."""
        return f"{self.namespace}/{self.name}"


def validate_memory_namespace(value: str) -> str:
    """Return the memory namespace ("" means "default") or raise InvalidInput saying why."""
    value = value or DEFAULT_MEMORY_NAMESPACE
    if not MEMORY_NAMESPACE.match(value):
        raise InvalidInput(
            f"namespace {value[:80]!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def collection_name(twin: TwinRef, memory_namespace: str) -> str:
    """The Qdrant collection holding ``twin``'s memories in ``memory_namespace`` (collection
    mode)."""
    namespace = validate_memory_namespace(memory_namespace)
    return f"{COLLECTION_PREFIX}.{twin.namespace}.{twin.name}.{namespace}"


def parse_collection_name(name: str) -> tuple[TwinRef, str] | None:
    """The inverse of collection_name, or None for a collection PhoenixTwin does not own."""
    parts = name.split(".", 3)
    if len(parts) != 4 or parts[0] != COLLECTION_PREFIX:
        return None
    try:
        return TwinRef(parts[1], parts[2]), validate_memory_namespace(parts[3])
    except InvalidInput:
        return None


def shared_collection_name(dim: int) -> str:
    """The collection every tenant of an endpoint shares in payload mode, per vector size
    (twins with different embedding models cannot share one)."""
    if dim < 1:
        raise InvalidInput(f"vector size must be positive, got {dim}")
    return f"{SHARED_COLLECTION_PREFIX}{dim}"


def tenant_key(twin: TwinRef, memory_namespace: str) -> str:
    """The tenant key of payload mode: ``<kubernetes namespace>/<twin name>/<memory ns>``."""
    return f"{twin.key}/{validate_memory_namespace(memory_namespace)}"


def parse_tenant_key(key: str) -> tuple[TwinRef, str] | None:
    """The inverse of tenant_key, or None for a value it cannot have produced."""
    parts = key.split("/", 2)
    if len(parts) != 3:
        return None
    try:
        return TwinRef(parts[0], parts[1]), validate_memory_namespace(parts[2])
    except InvalidInput:
        return None
