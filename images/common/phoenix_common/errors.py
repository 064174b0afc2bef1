"""The error family every component raises, and its mapping to gRPC and HTTP status codes.

Domain code raises these; each edge (a gRPC servicer, a FastAPI app, a kopf
handler) translates them once. A message is shown to the caller, so it names the
field, the rule and the value received, and never carries a secret.
"""

from __future__ import annotations

import grpc


class PhoenixError(Exception):
    """An error the caller can act on; its message is shown to them."""

    grpc_status: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500


class InvalidInput(PhoenixError):
    """The request is malformed or out of bounds; retrying it unchanged will fail again."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 422


class NotFound(PhoenixError):
    """The thing named by the request does not exist."""

    grpc_status = grpc.StatusCode.NOT_FOUND
    http_status = 404


class PermissionDenied(PhoenixError):
    """Policy forbids the request."""

    grpc_status = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403


class DependencyUnavailable(PhoenixError):
    """A dependency (Qdrant, a peer service, the LLM) cannot be reached now; retry later."""

    grpc_status = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class FailedPrecondition(PhoenixError):
    """The system is not in a state that allows the request (e.g. sandbox unavailable)."""

    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409
