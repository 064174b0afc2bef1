"""Session grants: "approve for the rest of this session", kept durably and revocable.

A grant is made by approving one request with ``scope: session``, in the same
commit as that approval. It belongs to one twin and one session and covers one
tool and calls shaped like the approved one (``patterns.GrantPattern``). A call
it covers is approved without asking, audited with the grant's id and the
principal who made the grant. Revoking it (the API, or the session ending on the
client's side) stops that from the next call on; nothing already run is undone.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from phoenix_orchestrator.approvals.db import Database, Statement
from phoenix_orchestrator.approvals.patterns import GrantPattern
from phoenix_orchestrator.approvals.store import ts

_COLUMNS = (
    "grant_id, twin_id, session_id, tool, pattern, created_by, principal, created_at, "
    "source_request_id, revoked_at, revoked_by, uses"
)


class SessionGrant(BaseModel):
    """One grant and what it covers."""

    model_config = ConfigDict(frozen=True)

    grant_id: str
    twin_id: str
    session_id: str
    tool: str
    pattern: GrantPattern
    created_by: str
    principal: str | None
    created_at: datetime
    source_request_id: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    uses: int = 0

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _from_row(row: sqlite3.Row) -> SessionGrant:
    data = dict(row)
    data["pattern"] = GrantPattern.model_validate_json(data["pattern"])
    return SessionGrant.model_validate(data)


class GrantStore:
    """Session grants over ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def insert_statement(grant: SessionGrant) -> Statement:
        return (
            f"INSERT INTO approval_grants ({_COLUMNS}) "  # noqa: S608 - constant column list
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0)",
            (
                grant.grant_id,
                grant.twin_id,
                grant.session_id,
                grant.tool,
                grant.pattern.model_dump_json(),
                grant.created_by,
                grant.principal,
                ts(grant.created_at),
                grant.source_request_id,
            ),
        )

    @staticmethod
    def used_statement(grant_id: str) -> Statement:
        return ("UPDATE approval_grants SET uses = uses + 1 WHERE grant_id = ?", (grant_id,))

    async def get(self, grant_id: str) -> SessionGrant | None:
        rows = await self.db.rows(
            f"SELECT {_COLUMNS} FROM approval_grants WHERE grant_id = ?",  # noqa: S608 - constant column list
            (grant_id,),
        )
        return _from_row(rows[0]) if rows else None

    async def active(self, twin_id: str, session_id: str, tool: str) -> list[SessionGrant]:
        """The session's live grants for ``tool``, oldest first."""
        rows = await self.db.rows(
            f"SELECT {_COLUMNS} FROM approval_grants "  # noqa: S608 - constant column list
            "WHERE twin_id = ? AND session_id = ? AND tool = ? AND revoked_at IS NULL "
            "ORDER BY created_at, rowid",
            (twin_id, session_id, tool),
        )
        return [_from_row(row) for row in rows]

    async def of_session(
        self, session_id: str, twin_id: str | None, *, include_revoked: bool
    ) -> list[SessionGrant]:
        sql = f"SELECT {_COLUMNS} FROM approval_grants WHERE session_id = ?"  # noqa: S608 - constant column list
        params: list[str] = [session_id]
        if twin_id is not None:
            sql += " AND twin_id = ?"
            params.append(twin_id)
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        rows = await self.db.rows(sql + " ORDER BY created_at DESC, rowid DESC", tuple(params))
        return [_from_row(row) for row in rows]

    def revoke_statement(self, grant_id: str, *, by: str, at: datetime) -> Statement:
        return (
            "UPDATE approval_grants SET revoked_at = ?, revoked_by = ? "
            "WHERE grant_id = ? AND revoked_at IS NULL",
            (ts(at), by, grant_id),
        )
