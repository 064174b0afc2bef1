"""The error family every component raises, and its mapping to gRPC and HTTP status codes.

Domain code raises these; each edge (a gRPC servicer, a FastAPI app, a kopf
handler) translates them once. A message is shown to the caller, so it names the
field, the rule and the value received, and never carries a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import grpc


class PhoenixError(Exception):
    """An error the caller can act on; its message is shown to them.

    The gRPC code is held by name and resolved on use, so an HTTP-only process
    (the gateway) never imports grpc for it (about 9 MiB of resident memory).
    """

    grpc_code: ClassVar[str] = "INTERNAL"  # a grpc.StatusCode member name
    http_status: ClassVar[int] = 500

    @property
    def grpc_status(self) -> grpc.StatusCode:
        import grpc  # noqa: PLC0415 - see the class docstring

        return grpc.StatusCode[self.grpc_code]


class InvalidInput(PhoenixError):
    """The request is malformed or out of bounds; retrying it unchanged will fail again."""

    grpc_code = "INVALID_ARGUMENT"
    http_status = 422


class NotFound(PhoenixError):
    """The thing named by the request does not exist."""

    grpc_code = "NOT_FOUND"
    http_status = 404


class PermissionDenied(PhoenixError):
    """Policy forbids the request."""

    grpc_code = "PERMISSION_DENIED"
    http_status = 403


class DependencyUnavailable(PhoenixError):
    """A dependency (Qdrant, a peer service, the LLM) cannot be reached now; retry later."""

    grpc_code = "UNAVAILABLE"
    http_status = 503


class FailedPrecondition(PhoenixError):
    """The system is not in a state that allows the request (e.g. sandbox unavailable)."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 409
