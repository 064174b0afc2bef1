"""The orchestrator's errors: each is a ``PhoenixError`` with an HTTP status and a reply.

Every one carries the ``actions_taken`` entries of the failed request, so the
HTTP edge (``app.install_error_handlers``) can answer with the same JSON shape
as a successful ``/chat`` reply, ``status: "error"``, plus an ``error`` object.

``conversational`` errors are outcomes of a well-formed chat message (no
pending request, a mismatch, an expired or already decided approval, a tool or
memory call its service refused): ``POST /chat`` answers them as ordinary chat
replies, HTTP 200 with ``status: "error"``, as the original did and as its
gateway and UI expect. The typed approvals API keeps their status codes. The
others (a dependency unreachable or timing out, the LLM down) stay HTTP errors
there too: nothing was decided, and load balancers, retries and alerts must see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from phoenix_common.errors import (
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PhoenixError,
)


class ReplyError(PhoenixError):
    """A ``PhoenixError`` whose message is the reply shown to the user."""

    code = "error"
    conversational: ClassVar[bool] = False

    def __init__(self, message: str, *, actions_taken: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.actions_taken = list(actions_taken)


class BackendUnavailable(ReplyError, DependencyUnavailable):
    """Memory or tools cannot be reached; nothing ran, retrying later may work."""

    code = "dependency_unavailable"


class BackendTimeout(ReplyError):
    """Memory or tools did not answer before the deadline; the outcome is unknown."""

    code = "dependency_timeout"
    grpc_code = "DEADLINE_EXCEEDED"
    http_status = 504


class BackendRejected(ReplyError, InvalidInput):
    """Memory or tools refused the request as invalid."""

    code = "rejected_by_dependency"
    conversational = True


class BackendForbidden(ReplyError, PermissionDenied):
    """The tools service's policy refused the twin."""

    code = "forbidden_by_dependency"
    conversational = True


class BackendFailed(ReplyError):
    """Memory or tools failed for another reason."""

    code = "dependency_failed"
    http_status = 502


class PlanningUnavailable(ReplyError, DependencyUnavailable):
    """The LLM failed and fallback to the deterministic planner is off."""

    code = "llm_unavailable"


class BadInput(ReplyError, InvalidInput):
    """The message or request cannot be acted on as sent."""

    code = "invalid_input"


class NoPendingRequest(ReplyError, NotFound):
    """No approval request matches what the caller named."""

    code = "approval_not_found"
    conversational = True


class ApprovalMismatch(ReplyError):
    """An approval names a tool or id other than the pending ones; they stay pending."""

    code = "approval_mismatch"
    conversational = True
    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class AlreadyDecided(ReplyError):
    """The approval request was approved, denied or expired before."""

    code = "approval_already_decided"
    conversational = True
    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class ApprovalExpired(ReplyError):
    """The approval request outlived APPROVAL_TTL_SECONDS."""

    code = "approval_expired"
    conversational = True
    grpc_code = "FAILED_PRECONDITION"
    http_status = 410
