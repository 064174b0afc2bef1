"""How many objects of a kind satisfy a condition, followed by a watch rather than polled.

The operator bench used to list every twin (or every Deployment and StatefulSet) every two
seconds until all were ready. At 1,000 twins each such list is megabytes the API server
reads, converts and encodes, and kubectl decodes, on the same two cores the measured
phase runs on: the measurement was slowing down what it measured. A watch costs the API
server one event per change, which it sends to its watchers anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import OnErrorAction, OnErrorResult

Predicate = Callable[[dict[str, Any]], bool]


class Readiness:
    """Objects of one kind (in ``namespaces``) for which ``ready`` holds, kept current by a
    list, then a watch from the list's resourceVersion, in a daemon thread.

    Whenever the watch cannot go on from where it was (a 410, a connection that cannot be
    reopened), the kind is listed again and the list *replaces* what was known: an object
    deleted while the watch was down is dropped, not left counted. (Restarting the watch
    from scratch, as lightkube does after a 410, would only re-announce the objects that
    still exist.)
    """

    def __init__(
        self,
        kubeconfig: str,
        kind: tuple[str, str, str, str],  # group, version, kind, plural
        namespaces: list[str],
        ready: Predicate,
    ) -> None:
        self._resource = create_namespaced_resource(*kind)
        self._namespaces = frozenset(namespaces)
        self._ready = ready
        self._state: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.relists = 0  # how many times the kind was listed (1 + each start-over)
        self._client = Client(config=KubeConfig.from_file(kubeconfig))
        self._thread = threading.Thread(target=self._follow, daemon=True, name=kind[2])
        self._thread.start()

    def _retry(self, err: Exception, count: int) -> OnErrorResult:
        if self._stopped.is_set():
            return OnErrorResult(OnErrorAction.STOP)
        if isinstance(err, ApiError) and err.status.code == 410:
            return OnErrorResult(OnErrorAction.RAISE)  # too old to go on: list again
        return OnErrorResult(OnErrorAction.RETRY, sleep=min(5.0, 0.2 * count))

    def _follow(self) -> None:
        while not self._stopped.is_set():
            try:
                self._watch(self._relist())
            except Exception:  # lightkube raises errors of (re)opening the watch itself
                self._stopped.wait(1.0)

    def _relist(self) -> str:
        listed = self._client.list(self._resource, namespace="*")
        state = {}
        for obj in listed:
            key, ready = self._judge(obj)
            if key is not None:
                state[key] = ready
        with self._lock:
            self._state = state
            self.relists += 1
        return listed.resourceVersion

    def _watch(self, version: str) -> None:
        events = self._client.watch(
            self._resource, namespace="*", resource_version=version, on_error=self._retry
        )
        for event, obj in events:
            if self._stopped.is_set():
                return
            key, ready = self._judge(obj)
            if key is None:
                continue
            with self._lock:
                if event == "DELETED":
                    self._state.pop(key, None)
                else:
                    self._state[key] = ready

    def _judge(self, obj: Any) -> tuple[tuple[str, str] | None, bool]:
        """(namespace, name) and whether ``ready`` holds; no key outside ``namespaces``."""
        body: dict[str, Any] = obj.to_dict()
        meta = body["metadata"]
        if meta["namespace"] not in self._namespaces:
            return None, False
        return (meta["namespace"], meta["name"]), self._ready(body)

    def count(self) -> int:
        with self._lock:
            return sum(self._state.values())

    def stop(self) -> None:
        """The thread ends at its next event or failed request (the API server gone)."""
        self._stopped.set()


def available(body: dict[str, Any]) -> bool:
    """A Deployment or StatefulSet with every replica of its current generation available."""
    status = body.get("status") or {}
    return bool(
        status.get("availableReplicas", 0) >= body["spec"]["replicas"]
        and status.get("observedGeneration", 0) >= body["metadata"]["generation"]
    )


def twin_ready(body: dict[str, Any]) -> bool:
    """A twin whose Ready condition is True for its current generation."""
    status = body.get("status") or {}
    return status.get("observedGeneration") == body["metadata"]["generation"] and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
