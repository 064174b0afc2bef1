"""A twin's Qdrant endpoint: checked while it lives, its memories reclaimed on deletion.

The memory service owns the schema (it creates collections and payload indexes on
first use); the Qdrant calls themselves live in reconcile/qdrant.py. This module
decides when to make them, reads the API-key Secret, and turns failures into the
twin's ``QdrantUnreachable`` problem or a bounded reclaim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_operator import metrics
from phoenix_operator.api import SKIP_RECLAIM_ANNOTATION, SecretKeyRef, Twin
from phoenix_operator.kube import KubeClient, KubeError
from phoenix_operator.reconcile.children import secret_value
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.state import Event, ReconcileResult, TwinState
from phoenix_operator.reconcile.status import Problem
from phoenix_operator.render.common import stable_hash


class Collections:
    """Checks twins' Qdrant endpoints and reclaims their memories through a ``QdrantConnector``."""

    def __init__(
        self,
        kube: KubeClient,
        qdrant: QdrantConnector,
        *,
        retry_seconds: float = 30.0,
        reclaim_max_attempts: int = 5,
    ) -> None:
        self.kube = kube
        self.qdrant = qdrant
        self.retry_seconds = retry_seconds
        self.reclaim_max_attempts = reclaim_max_attempts

    async def _api_key(self, namespace: str, ref: SecretKeyRef | None) -> str | None:
        if ref is None:
            return None
        return secret_value(await self.kube.get("v1", "Secret", namespace, ref.name), ref.key)

    def wanted_key(self, twin: Twin) -> str:
        """Changes exactly when what to check changes (endpoint, names, size, tenancy)."""
        return stable_hash(
            [
                self.qdrant.describe(twin),
                twin.spec.memory.namespaces,
                twin.spec.memory.embedding.dimension,
                self.qdrant.collections(twin),
            ]
        )

    async def ensure(self, twin: Twin, state: TwinState, result: ReconcileResult) -> None:
        """Check the endpoint when the key changed or the last attempt failed."""
        wanted = self.wanted_key(twin)
        if state.collections_key == wanted and "qdrant" not in state.problems:
            return
        try:
            api_key = await self._api_key(
                twin.namespace, twin.spec.memory.qdrant.api_key_secret_ref
            )
            names = await self.qdrant.check(twin, api_key)
        except (DependencyUnavailable, KubeError) as err:
            state.problems["qdrant"] = Problem("QdrantUnreachable", str(err))
            metrics.ERRORS.labels(reason="QdrantUnreachable").inc()
            result.retry_after = self.retry_seconds
            return
        if "qdrant" in state.problems:
            result.events.append(Event("Normal", "QdrantReachable", "Qdrant is reachable again."))
        state.problems.pop("qdrant", None)
        if tuple(names) != state.collections:  # first time, or the namespaces changed
            message = (
                f"Qdrant reachable; memories go to {', '.join(names)} "
                "(created by the memory service on first use)."
            )
            result.events.append(Event("Normal", "CollectionsEnsured", message))
        state.collections = tuple(names)
        state.collections_key = wanted

    async def reclaim(self, body: Mapping[str, Any], attempt: int) -> ReconcileResult:
        """Delete a deleted twin's collections (reclaimPolicy Delete), boundedly.

        Raises DependencyUnavailable while attempts remain; after the last one the
        twin is let go with a Warning event naming what was left in Qdrant.
        """
        result = ReconcileResult()
        try:
            twin = Twin.from_body(body)
        except InvalidInput:
            return result
        if twin.spec.memory.reclaim_policy != "Delete":
            return result
        if twin.annotations.get(SKIP_RECLAIM_ANNOTATION) == "true":
            message = f"{SKIP_RECLAIM_ANNOTATION}=true: collections kept."
            result.events.append(Event("Warning", "ReclaimSkipped", message))
            return result
        try:
            api_key = await self._api_key(
                twin.namespace, twin.spec.memory.qdrant.api_key_secret_ref
            )
            names = await self.qdrant.delete(twin, api_key)
        except (DependencyUnavailable, KubeError) as err:
            metrics.ERRORS.labels(reason="ReclaimFailed").inc()
            if attempt + 1 >= self.reclaim_max_attempts:
                left = ", ".join(self.qdrant.collections(twin))
                message = (
                    f"Gave up deleting collections after {attempt + 1} attempts ({err}); "
                    f"left in Qdrant: {left}."
                )
                result.events.append(Event("Warning", "ReclaimAbandoned", message))
                return result
            raise DependencyUnavailable(str(err)) from err
        message = f"Deleted collections: {', '.join(names)}."
        result.events.append(Event("Normal", "CollectionsDeleted", message))
        return result
