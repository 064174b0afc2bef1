"""The orchestrator's SQLite file: one connection, one writer, transactions run off the loop.

Every write that must not be half-done (a decision and its audit line, a claim
before a tool run, a parked request and its agent turn) is one transaction:
``atomic`` runs a compare-and-set statement and, only if it changed exactly one
row, the statements that belong with it, then commits. With WAL and
``synchronous=FULL`` a commit is on disk before the call returns, so a
``kill -9`` right after it loses nothing, and one right before it leaves no trace.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phoenix_orchestrator.approvals import schema

Statement = tuple[str, tuple[Any, ...]]


class Database:
    """The single connection of this process; every method is safe to await from the loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            schema.migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        def run() -> list[sqlite3.Row]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()

        return await asyncio.to_thread(run)

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        return (await self.transaction([(sql, params)]))[0]

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """All statements or none; the rows each changed."""

        def run() -> list[int]:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    counts = [self._db.execute(sql, params).rowcount for sql, params in statements]
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return counts

        return await asyncio.to_thread(run)

    async def atomic(self, guard: Statement, then: Sequence[Statement] = ()) -> bool:
        """Run ``guard``; if it changed exactly one row, run ``then`` and commit, else roll back.

        The guard is a compare-and-set (``UPDATE … WHERE status = ?``): the one
        caller that wins it also writes what goes with it (the audit line, the
        grant, the turn), in the same commit.
        """

        def run() -> bool:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if self._db.execute(*guard).rowcount != 1:
                        self._db.execute("ROLLBACK")
                        return False
                    for sql, params in then:
                        self._db.execute(sql, params)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return True

        return await asyncio.to_thread(run)
