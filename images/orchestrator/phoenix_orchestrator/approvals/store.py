"""Approval requests and their audit trail in the orchestrator's SQLite file.

Why SQLite: one orchestrator process per twin owns its requests (a StatefulSet
of one replica with a claim), and SQLite gives what that owner needs: atomic
compare-and-set on a status column, so one request is decided and run once even
when a chat message, the API and the timeout sweep race; a durable audit table
in the same commit as the change it records; no extra service to run.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from phoenix_orchestrator.approvals import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    AuditEntry,
)
from phoenix_orchestrator.approvals.db import Database, Statement

_COLUMNS = (
    "request_id", "kind", "twin_id", "session_id", "namespace", "query", "tool_name",
    "arguments", "arguments_hash", "raw_decision", "planner", "created_at", "expires_at",
    "status", "decided_by", "decided_at", "approved_arguments", "approved_hash", "principal",
    "reason", "policy_rule", "on_timeout", "turn_id", "step", "grant_id", "result",
)  # fmt: skip
_SELECT = f"SELECT rowid, {', '.join(_COLUMNS)} FROM approval_requests"  # noqa: S608 - constant column list
_JSON_COLUMNS = ("arguments", "approved_arguments")
_TIME_COLUMNS = ("created_at", "expires_at", "decided_at")
MAX_RESULT_CHARS = 8_000


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _to_row(request: ApprovalRequest) -> tuple[Any, ...]:
    data = request.model_dump()
    for name in _JSON_COLUMNS:
        if data[name] is not None:
            data[name] = json.dumps(data[name], sort_keys=True)
    for name in _TIME_COLUMNS:
        if data[name] is not None:
            data[name] = ts(data[name])
    return tuple(data[name] for name in _COLUMNS)


def _from_row(row: sqlite3.Row) -> ApprovalRequest:
    data: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    for name in _JSON_COLUMNS:
        if data[name] is not None:
            data[name] = json.loads(data[name])
    return ApprovalRequest.model_validate(data)


def audit_statement(entry: AuditEntry) -> Statement:
    return (
        "INSERT INTO approval_audit (request_id, event, actor, channel, at, detail, principal, "
        "arguments_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.request_id,
            entry.event,
            entry.actor,
            entry.channel,
            ts(entry.at),
            entry.detail,
            entry.principal,
            entry.arguments_hash,
        ),
    )


class ApprovalStore:
    """Durable approval requests over ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert_statement(self, request: ApprovalRequest) -> Statement:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        return (
            f"INSERT INTO approval_requests ({', '.join(_COLUMNS)}) "  # noqa: S608 - constants
            f"VALUES ({placeholders})",
            _to_row(request),
        )

    async def add(self, request: ApprovalRequest, audit: AuditEntry, *also: Statement) -> None:
        """Insert the request, its first audit line and ``also`` in one commit."""
        await self.db.transaction([self.insert_statement(request), audit_statement(audit), *also])

    async def get(self, request_id: str) -> ApprovalRequest | None:
        rows = await self.db.rows(f"{_SELECT} WHERE request_id = ?", (request_id,))
        return _from_row(rows[0]) if rows else None

    async def pending(
        self, session_id: str, *, twin_id: str | None = None, kind: ApprovalKind | None = None
    ) -> list[ApprovalRequest]:
        """Requests still ``pending`` in a session (expired ones included), newest first."""
        sql = f"{_SELECT} WHERE session_id = ? AND status = 'pending'"
        params: list[Any] = [session_id]
        if twin_id is not None:
            sql += " AND twin_id = ?"
            params.append(twin_id)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY created_at DESC, rowid DESC"
        return [_from_row(row) for row in await self.db.rows(sql, tuple(params))]

    async def transition(
        self,
        request_id: str,
        *,
        source: ApprovalStatus,
        target: ApprovalStatus,
        audit: AuditEntry | None = None,
        also: Sequence[Statement] = (),
        **columns: Any,
    ) -> bool:
        """Move a request from ``source`` to ``target`` (setting ``columns`` too) and write
        ``audit`` and ``also`` in the same commit; False, and nothing written, if it was not
        in ``source``."""
        values = dict(columns)
        for name in _JSON_COLUMNS:
            if name in values and values[name] is not None:
                values[name] = json.dumps(values[name], sort_keys=True)
        for name in _TIME_COLUMNS:
            if isinstance(values.get(name), datetime):
                values[name] = ts(values[name])
        if isinstance(values.get("result"), str):
            values["result"] = values["result"][:MAX_RESULT_CHARS]
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown approval columns {sorted(unknown)}")
        assignments = ", ".join(["status = ?", *(f"{name} = ?" for name in values)])
        guard: Statement = (
            f"UPDATE approval_requests SET {assignments} "  # noqa: S608 - checked names
            "WHERE request_id = ? AND status = ?",
            (target, *values.values(), request_id, source),
        )
        then = [audit_statement(audit)] if audit is not None else []
        return await self.db.atomic(guard, [*then, *also])

    async def overdue(self, now: datetime) -> list[ApprovalRequest]:
        """Requests still ``pending`` whose expiry has passed, oldest first."""
        rows = await self.db.rows(
            f"{_SELECT} WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at",
            (ts(now),),
        )
        return [_from_row(row) for row in rows]

    async def in_status(self, status: ApprovalStatus) -> list[ApprovalRequest]:
        rows = await self.db.rows(f"{_SELECT} WHERE status = ? ORDER BY rowid", (status,))
        return [_from_row(row) for row in rows]

    async def page(
        self,
        *,
        twin_id: str | None,
        session_id: str | None,
        statuses: Sequence[ApprovalStatus] | None,
        limit: int,
        before: int | None,
    ) -> tuple[list[ApprovalRequest], int | None]:
        """Newest first; the rowid to pass as ``before`` for the next page, or None."""
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        for column, value in (("twin_id", twin_id), ("session_id", session_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if before is not None:
            where.append("rowid < ?")
            params.append(before)
        rows = await self.db.rows(
            f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY rowid DESC LIMIT ?",
            (*params, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [_from_row(row) for row in rows], (rows[-1]["rowid"] if more else None)

    async def prune(self, before: datetime) -> int:
        """Delete decided requests, finished turns, revoked grants and audit lines older than
        ``before``; pending requests and live grants are kept whatever their age."""
        cutoff = ts(before)
        counts = await self.db.transaction(
            [
                (
                    "DELETE FROM approval_requests WHERE status NOT IN ('pending', 'approved', "
                    "'running') AND created_at < ?",
                    (cutoff,),
                ),
                ("DELETE FROM approval_audit WHERE at < ?", (cutoff,)),
                ("DELETE FROM agent_turns WHERE status != 'open' AND updated_at < ?", (cutoff,)),
                (
                    "DELETE FROM approval_grants WHERE revoked_at IS NOT NULL AND revoked_at < ?",
                    (cutoff,),
                ),
            ]
        )
        return sum(counts)

    async def audit(self, entry: AuditEntry) -> None:
        await self.db.transaction([audit_statement(entry)])

    async def audit_trail(self, request_id: str) -> list[AuditEntry]:
        rows = await self.db.rows(
            "SELECT request_id, event, actor, channel, at, detail, principal, arguments_hash "
            "FROM approval_audit WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
        return [AuditEntry.model_validate(dict(row)) for row in rows]

    async def audit_trails(self, request_ids: Sequence[str]) -> Mapping[str, list[AuditEntry]]:
        if not request_ids:
            return {}
        marks = ", ".join("?" for _ in request_ids)
        rows = await self.db.rows(
            "SELECT request_id, event, actor, channel, at, detail, principal, arguments_hash "  # noqa: S608 - placeholders only
            f"FROM approval_audit WHERE request_id IN ({marks}) ORDER BY id",
            tuple(request_ids),
        )
        trails: dict[str, list[AuditEntry]] = {rid: [] for rid in request_ids}
        for row in rows:
            trails[row["request_id"]].append(AuditEntry.model_validate(dict(row)))
        return trails
