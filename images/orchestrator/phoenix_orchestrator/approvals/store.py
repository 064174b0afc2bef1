"""Approval requests and their audit trail in one SQLite file.

Why SQLite: a pod's orchestrator needs pending requests to survive a restart,
one process owns them, and the volume (``ORCHESTRATOR_STATE_DIR``) is local.
SQLite gives atomic compare-and-set on a status column (so one request is
decided once even when a chat message and the API race), a durable audit table
and no extra service to run. Calls are short; they run on a worker thread
so the event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phoenix_orchestrator.approvals import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    AuditEntry,
)

_SCHEMA = """
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
"""

_COLUMNS = (
    "request_id, kind, twin_id, session_id, namespace, query, tool_name, arguments, "
    "raw_decision, planner, created_at, expires_at, status, decided_by, decided_at"
)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _row_to_request(row: sqlite3.Row) -> ApprovalRequest:
    data: dict[str, Any] = dict(row)
    data["arguments"] = json.loads(data["arguments"])
    return ApprovalRequest.model_validate(data)


class ApprovalStore:
    """Durable approval requests; every method is safe to await from the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        def run() -> sqlite3.Cursor:
            with self._lock:
                return self._db.execute(sql, params)

        return await asyncio.to_thread(run)

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        def run() -> list[sqlite3.Row]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()

        return await asyncio.to_thread(run)

    async def add(self, request: ApprovalRequest) -> None:
        await self._run(
            f"INSERT INTO approval_requests ({_COLUMNS}) "  # noqa: S608 - constant column list
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.request_id,
                request.kind,
                request.twin_id,
                request.session_id,
                request.namespace,
                request.query,
                request.tool_name,
                json.dumps(request.arguments, sort_keys=True),
                request.raw_decision,
                request.planner,
                _ts(request.created_at),
                _ts(request.expires_at),
                request.status,
                request.decided_by,
                _ts(request.decided_at) if request.decided_at else None,
            ),
        )

    async def get(self, request_id: str) -> ApprovalRequest | None:
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM approval_requests WHERE request_id = ?",  # noqa: S608 - constant column list
            (request_id,),
        )
        return _row_to_request(rows[0]) if rows else None

    async def pending(
        self, session_id: str, *, twin_id: str | None = None, kind: ApprovalKind | None = None
    ) -> list[ApprovalRequest]:
        """Requests still ``pending`` in a session (expired ones included), newest first."""
        sql = (
            f"SELECT {_COLUMNS} FROM approval_requests "  # noqa: S608 - constant column list
            "WHERE session_id = ? AND status = 'pending'"
        )
        params: list[Any] = [session_id]
        if twin_id is not None:
            sql += " AND twin_id = ?"
            params.append(twin_id)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY created_at DESC, rowid DESC"
        return [_row_to_request(row) for row in await self._rows(sql, tuple(params))]

    async def transition(
        self,
        request_id: str,
        *,
        source: ApprovalStatus,
        target: ApprovalStatus,
        actor: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Move a request from ``source`` to ``target``; False if it was not in ``source``."""
        if actor is None:
            cursor = await self._run(
                "UPDATE approval_requests SET status = ? WHERE request_id = ? AND status = ?",
                (target, request_id, source),
            )
        else:
            cursor = await self._run(
                "UPDATE approval_requests SET status = ?, decided_by = ?, decided_at = ? "
                "WHERE request_id = ? AND status = ?",
                (target, actor, _ts(at or datetime.now(UTC)), request_id, source),
            )
        return cursor.rowcount == 1

    async def overdue(self, now: datetime) -> list[ApprovalRequest]:
        """Requests still ``pending`` whose expiry has passed."""
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM approval_requests "  # noqa: S608 - constant column list
            "WHERE status = 'pending' AND expires_at <= ?",
            (_ts(now),),
        )
        return [_row_to_request(row) for row in rows]

    async def prune(self, before: datetime) -> int:
        """Delete decided requests created, and audit lines written, before ``before``."""
        cutoff = _ts(before)
        requests = await self._run(
            "DELETE FROM approval_requests WHERE status != 'pending' AND created_at < ?",
            (cutoff,),
        )
        audit = await self._run("DELETE FROM approval_audit WHERE at < ?", (cutoff,))
        return requests.rowcount + audit.rowcount

    async def audit(self, entry: AuditEntry) -> None:
        await self._run(
            "INSERT INTO approval_audit (request_id, event, actor, channel, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.request_id,
                entry.event,
                entry.actor,
                entry.channel,
                _ts(entry.at),
                entry.detail,
            ),
        )

    async def audit_trail(self, request_id: str) -> list[AuditEntry]:
        rows = await self._rows(
            "SELECT request_id, event, actor, channel, at, detail FROM approval_audit "
            "WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
        return [AuditEntry.model_validate(dict(row)) for row in rows]
