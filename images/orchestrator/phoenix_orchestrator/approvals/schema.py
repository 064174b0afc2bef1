"""The approval store's tables, and the additive migration of a file an older version wrote.

Columns are only ever added (``ALTER TABLE … ADD COLUMN`` with a default), so
a store written before approval policies, grants and the agent loop opens
unchanged: its requests read as ``ask`` requests of step 1 with no turn.
"""

from __future__ import annotations

import sqlite3

_TABLES = """
CREATE TABLE IF NOT EXISTS approval_requests (
    request_id   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('memory', 'tool')),
    twin_id      TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    query        TEXT,
    tool_name    TEXT,
    arguments    TEXT NOT NULL DEFAULT '{}',
    raw_decision TEXT NOT NULL,
    planner      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    status       TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT
);
CREATE INDEX IF NOT EXISTS approval_requests_by_session
    ON approval_requests (session_id, status, created_at);
CREATE TABLE IF NOT EXISTS approval_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    actor      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    at         TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS approval_audit_by_request ON approval_audit (request_id, id);
CREATE TABLE IF NOT EXISTS approval_grants (
    grant_id          TEXT PRIMARY KEY,
    twin_id           TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    tool              TEXT NOT NULL,
    pattern           TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    principal         TEXT,
    created_at        TEXT NOT NULL,
    source_request_id TEXT NOT NULL,
    revoked_at        TEXT,
    revoked_by        TEXT,
    uses              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS approval_grants_by_session
    ON approval_grants (twin_id, session_id, tool);
CREATE TABLE IF NOT EXISTS agent_turns (
    turn_id    TEXT PRIMARY KEY,
    twin_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    message    TEXT NOT NULL,
    steps      TEXT NOT NULL DEFAULT '[]',
    status     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

# (table, column, declaration): added when missing, in this order.
_ADDED_COLUMNS = (
    ("approval_requests", "arguments_hash", "TEXT NOT NULL DEFAULT ''"),
    ("approval_requests", "approved_arguments", "TEXT"),
    ("approval_requests", "approved_hash", "TEXT"),
    ("approval_requests", "principal", "TEXT"),
    ("approval_requests", "reason", "TEXT"),
    ("approval_requests", "policy_rule", "TEXT NOT NULL DEFAULT 'ask:default'"),
    ("approval_requests", "on_timeout", "TEXT NOT NULL DEFAULT 'deny'"),
    ("approval_requests", "turn_id", "TEXT"),
    ("approval_requests", "step", "INTEGER NOT NULL DEFAULT 1"),
    ("approval_requests", "grant_id", "TEXT"),
    ("approval_requests", "result", "TEXT"),
    ("approval_audit", "principal", "TEXT"),
    ("approval_audit", "arguments_hash", "TEXT NOT NULL DEFAULT ''"),
)

_INDEXES = """
CREATE INDEX IF NOT EXISTS approval_requests_by_twin ON approval_requests (twin_id, status);
CREATE INDEX IF NOT EXISTS approval_requests_by_state ON approval_requests (status, expires_at);
"""


def migrate(db: sqlite3.Connection) -> None:
    """Create what is missing; never drop or rewrite anything."""
    db.executescript(_TABLES)
    for table, column, declaration in _ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    db.executescript(_INDEXES)
