"""Prometheus metrics of phoenix-memory, served on MEMORY_METRICS_PORT (/metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OPERATION_SECONDS = Histogram(
    "phoenix_memory_operation_seconds",
    "Time spent in an archive operation (embedding and storage included).",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EMBEDDING_BATCH_TEXTS = Histogram(
    "phoenix_memory_embedding_batch_texts",
    "Texts per call to the embedding model (concurrent requests are coalesced).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
STORAGE_UP = Gauge(
    "phoenix_memory_storage_up", "1 while the last heartbeat reached the storage backend."
)
DEDUPLICATED = Counter(
    "phoenix_memory_deduplicated_total",
    "Commits that refreshed an existing near-duplicate memory instead of adding one.",
    ["namespace"],
)
RETENTION_DELETED = Counter(
    "phoenix_memory_retention_deleted_total",
    "Memories deleted by a namespace's retention policy.",
    ["namespace", "reason"],
)
BACKUPS = Counter("phoenix_memory_backups_total", "Scheduled backups, by outcome.", ["outcome"])
LAST_BACKUP_SECONDS = Gauge(
    "phoenix_memory_last_backup_timestamp_seconds", "When the last successful backup finished."
)
