"""A twin's Qdrant collections: ensured while it lives, reclaimed on deletion (policy Delete).

The Qdrant calls themselves (schema, client) live in reconcile/qdrant.py; this
module decides when to make them, reads the API-key Secret, and turns failures
into the twin's ``QdrantUnreachable`` problem or a bounded reclaim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_operator import metrics
from phoenix_operator.api import SKIP_RECLAIM_ANNOTATION, SecretKeyRef, Twin
from phoenix_operator.kube import KubeClient, KubeError
from phoenix_operator.reconcile.children import secret_value
from phoenix_operator.reconcile.qdrant import QdrantConnector, collections
from phoenix_operator.reconcile.state import Event, ReconcileResult, TwinState
from phoenix_operator.reconcile.status import Problem
from phoenix_operator.render.common import stable_hash


class Collections:
    """Ensures and reclaims twins' collections through a ``QdrantConnector``."""

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
        """Changes exactly when the collections to ensure change (endpoint, names, size)."""
        return stable_hash(
            [
                self.qdrant.describe(twin),
                twin.spec.memory.namespaces,
                twin.spec.memory.embedding.dimension,
            ]
        )

    async def ensure(self, twin: Twin, state: TwinState, result: ReconcileResult) -> None:
        """Create missing collections when their key changed or the last attempt failed."""
        wanted = self.wanted_key(twin)
        if state.collections_key == wanted and "qdrant" not in state.problems:
            return
        try:
            api_key = await self._api_key(
                twin.namespace, twin.spec.memory.qdrant.api_key_secret_ref
            )
            names = await self.qdrant.ensure(twin, api_key)
        except (DependencyUnavailable, KubeError) as err:
            state.problems["qdrant"] = Problem("QdrantUnreachable", str(err))
            metrics.ERRORS.labels(reason="QdrantUnreachable").inc()
            result.retry_after = self.retry_seconds
            return
        if "qdrant" in state.problems:
            result.events.append(Event("Normal", "QdrantReachable", "Qdrant is reachable again."))
        state.problems.pop("qdrant", None)
        if tuple(names) != state.collections:  # first time, or the namespaces changed
            result.events.append(
                Event("Normal", "CollectionsEnsured", f"Collections ready: {', '.join(names)}.")
            )
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
                left = ", ".join(collections(twin))
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
