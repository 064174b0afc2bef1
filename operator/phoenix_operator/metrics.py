"""Prometheus metrics of the operator, served from on.startup (phoenix_common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "phoenix_operator_reconciles_total",
    "Twin reconciliations, by trigger and result.",
    ["trigger", "result"],
)
RECONCILE_SECONDS = Histogram(
    "phoenix_operator_reconcile_duration_seconds",
    "Time to reconcile one twin (render, compare, apply, status).",
    ["trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter(
    "phoenix_operator_errors_total",
    "Reconcile failures, by condition reason (QdrantUnreachable, ApplyFailed, ...).",
    ["reason"],
)
API_WRITES = Counter(
    "phoenix_operator_api_writes_total",
    "Writes the operator sent to the API server, by verb and kind (0 while converged).",
    ["verb", "kind"],
)
DRIFT_RESTORED = Counter(
    "phoenix_operator_drift_restored_total",
    "Children re-applied because they were deleted or differed from their rendering.",
    ["kind"],
)
CHILD_EVENTS = Counter(
    "phoenix_operator_child_events_total",
    "Child watch events that asked for a reconcile: queued, or coalesced into a waiting one "
    "(echoes of the operator's own writes are not counted).",
    ["result"],
)
TWINS = Gauge("phoenix_operator_twins", "Twins known to the operator, by phase.", ["phase"])
READY_SECONDS = Histogram(
    "phoenix_operator_twin_ready_duration_seconds",
    "Time from a twin's creation to its first Ready=True seen by this operator.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
