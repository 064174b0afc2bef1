"""What the operator remembers about each twin between reconciles, and what one reconcile reports.

All of it is rebuilt after a restart: the first reconcile of a twin in a new
process renders it and compares every child against the (fully listed) index,
so nothing here is needed for correctness, only to skip work while converged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from phoenix_operator.api import Component, TwinStatus
from phoenix_operator.reconcile.children import ChildKey
from phoenix_operator.reconcile.status import Problem


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the twin (the handler posts it)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class ReconcileResult:
    """What one reconcile of a twin did that its caller must act on."""

    events: list[Event] = field(default_factory=list)
    # Qdrant (or another dependency) failed: retry the twin's handler after this many seconds.
    retry_after: float | None = None


@dataclass
class TwinState:
    """One twin as this process last left it."""

    # The (uid, generation) the children below were rendered for; None: never rendered.
    rendered_for: tuple[str, int] | None = None
    # Every child of this generation was created once (by this process, or by an earlier one
    # whose status says it observed this generation): a missing child was deleted, a drift.
    created: tuple[str, int] | None = None
    # Every rendered child and the digest of its content when last seen matching the rendering
    # (from an apply response or a comparison): a watch event with that digest is an echo.
    verified: dict[ChildKey, int] = field(default_factory=dict)
    # Children this process wrote (revision written, applied-hash) until the watch delivers
    # them: until then the index holds an older version that must not be mistaken for drift.
    in_flight: dict[ChildKey, tuple[int, str | None]] = field(default_factory=dict)
    # The newest revision of each child the watch delivered: a write's event can arrive
    # before the write's response, and must not leave that write in flight forever.
    delivered: dict[ChildKey, int] = field(default_factory=dict)
    config_hashes: dict[Component, str] = field(default_factory=dict)
    problems: dict[str, Problem] = field(default_factory=dict)
    collections: tuple[str, ...] = ()
    collections_key: str | None = None
    observed_generation: int = 0
    last_status: TwinStatus | None = None
    phase: str | None = None  # counted in phoenix_operator_twins{phase}
    ready: bool | None = None
    warned: tuple[str, str] | None = None  # the Degraded (reason, message) last posted
    failures: int = 0  # consecutive reconciles that ended in a problem (for backoff)
    new_twin: bool = False  # first seen without a status: created while we watched
    namespace_terminating: bool = False  # everything is going away: stop re-applying

    def converged_at(self, digests: dict[ChildKey, int]) -> bool:
        """Every child we rendered is live with the content we verified, and there is no other."""
        return bool(self.verified) and not self.in_flight and digests == self.verified

    def seen(self, child: ChildKey, revision: int | None, *, deleted: bool = False) -> None:
        """The watch delivered ``child`` at ``revision``: our write of it is no longer in flight."""
        if deleted:
            self.delivered.pop(child, None)
        elif revision is not None:
            self.delivered[child] = max(revision, self.delivered.get(child, revision))
        written = self.in_flight.get(child)
        if written is not None and (deleted or (revision is not None and revision >= written[0])):
            del self.in_flight[child]

    def written(self, child: ChildKey, revision: int, applied_hash: str | None) -> None:
        """This process wrote ``child`` at ``revision``: in flight unless already delivered."""
        if self.delivered.get(child, -1) < revision:
            self.in_flight[child] = (revision, applied_hash)
