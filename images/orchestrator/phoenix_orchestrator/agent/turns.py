"""Agent turns: one user message and the steps the planner took for it, kept in SQLite.

A turn pauses whenever a step needs a human; the decision may arrive minutes
later, through another request, after a restart. The turn holds what the
planner needs to continue: the message and, per step, the action it chose and
what it observed (a result, a denial and its reason). Message text is stored,
never logged.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from phoenix_orchestrator.approvals.db import Database, Statement
from phoenix_orchestrator.approvals.store import ts

TurnStatus = Literal["open", "done"]


class Step(BaseModel):
    """One planner decision in a turn and what came of it."""

    model_config = ConfigDict(frozen=True)

    step: int
    action: str  # the planner's raw decision (JSON)
    request_id: str | None = None
    observation: str | None = None


class Turn(BaseModel):
    """A user message and the steps taken for it."""

    model_config = ConfigDict(frozen=True)

    turn_id: str
    twin_id: str
    session_id: str
    namespace: str
    message: str
    steps: tuple[Step, ...] = Field(default=())
    status: TurnStatus = "open"
    created_at: datetime
    updated_at: datetime

    @property
    def step_count(self) -> int:
        return len(self.steps)

    def with_step(self, step: Step, now: datetime) -> Turn:
        return self.model_copy(update={"steps": (*self.steps, step), "updated_at": now})

    def observed(self, request_id: str, observation: str, now: datetime) -> Turn:
        """The turn with ``observation`` recorded on the step that made ``request_id``."""
        steps = tuple(
            s.model_copy(update={"observation": observation}) if s.request_id == request_id else s
            for s in self.steps
        )
        return self.model_copy(update={"steps": steps, "updated_at": now})

    def finished(self, now: datetime) -> Turn:
        return self.model_copy(update={"status": "done", "updated_at": now})


_COLUMNS = "turn_id, twin_id, session_id, namespace, message, steps, status, created_at, updated_at"


def _from_row(row: sqlite3.Row) -> Turn:
    data = dict(row)
    data["steps"] = json.loads(data["steps"])
    return Turn.model_validate(data)


class TurnStore:
    """Turns over ``Database``; saved in the same commit as the request a step parks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def save_statement(turn: Turn) -> Statement:
        return (
            f"INSERT INTO agent_turns ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608 - constant column list
            "ON CONFLICT (turn_id) DO UPDATE SET steps = excluded.steps, "
            "status = excluded.status, updated_at = excluded.updated_at",
            (
                turn.turn_id,
                turn.twin_id,
                turn.session_id,
                turn.namespace,
                turn.message,
                json.dumps([s.model_dump() for s in turn.steps]),
                turn.status,
                ts(turn.created_at),
                ts(turn.updated_at),
            ),
        )

    async def save(self, turn: Turn) -> None:
        await self.db.transaction([self.save_statement(turn)])

    async def get(self, turn_id: str) -> Turn | None:
        rows = await self.db.rows(
            f"SELECT {_COLUMNS} FROM agent_turns WHERE turn_id = ?",  # noqa: S608 - constant column list
            (turn_id,),
        )
        return _from_row(rows[0]) if rows else None
