"""Names shared by the memory service and the operator: the Qdrant collection scheme.

A twin's memories live in one Qdrant collection per memory namespace::

    phx.<kubernetes namespace>.<twin name>.<memory namespace>

The twin's Kubernetes namespace and name are DNS labels (``[a-z0-9-]``) and a
memory namespace is ``[A-Za-z0-9_-]``: none may contain ``.``, so the scheme is
injective (two tenants can never map to one collection), and every result is a
name Qdrant accepts (at most 196 characters, none of ``<>:"/\\|?*``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phoenix_common.errors import InvalidInput

COLLECTION_PREFIX = "phx"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MEMORY_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_MEMORY_NAMESPACE = "default"


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


def validate_memory_namespace(value: str) -> str:
    """Return the memory namespace ("" means "default") or raise InvalidInput saying why."""
    value = value or DEFAULT_MEMORY_NAMESPACE
    if not MEMORY_NAMESPACE.match(value):
        raise InvalidInput(
            f"namespace {value[:80]!r} is invalid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def collection_name(twin: TwinRef, memory_namespace: str) -> str:
    """The Qdrant collection holding ``twin``'s memories in ``memory_namespace``."""
    namespace = validate_memory_namespace(memory_namespace)
    return f"{COLLECTION_PREFIX}.{twin.namespace}.{twin.name}.{namespace}"


def parse_collection_name(name: str) -> tuple[TwinRef, str] | None:
    """The inverse of collection_name, or None for a collection PhoenixTwin does not own."""
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != COLLECTION_PREFIX:
        return None
    try:
        return TwinRef(parts[1], parts[2]), validate_memory_namespace(parts[3])
    except InvalidInput:
        return None
