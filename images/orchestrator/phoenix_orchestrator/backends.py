"""The only module that talks gRPC: memory ``QueryMemory`` and tools ``RequestExecution``.

The client is grpclib (pure Python, on asyncio and h2) rather than grpcio:
importing grpcio (with its stubs and the OpenTelemetry gRPC interceptors)
cost the orchestrator about 17 MiB of resident memory, grpclib costs about 5,
against issue 12's 64 MiB budget (docs/gateway.md has the figures). The generated ``*_pb2_grpc``
stubs import grpcio, so the methods are called by path with grpclib's method
classes and the ``*_pb2`` messages.

Channels are opened on first use, never at startup, so the orchestrator
starts while memory or tools are still coming up, and are kept for later
calls. Every call has a deadline (sent to the server as ``grpc-timeout``).
Failures become orchestrator errors with a reply a user can act on:
UNAVAILABLE, and a connection refused, reset or lost -> 503 (the request is
approvable again, ``runs``); DEADLINE_EXCEEDED, and the deadline passing
here -> 504; INVALID_ARGUMENT -> 422; PERMISSION_DENIED -> 403; anything
else -> 502. The one exception: a tool run whose connection was lost after
the request went out may have run, so it is a 502 with an unknown outcome,
never run again. ``https://`` addresses use TLS verified against the
system's trust store.

grpclib ends every call of a connection when the server sends GOAWAY, also
the graceful one a gRPC server sends as it stops with a grace period, where
grpcio let calls already started finish: a tool run in flight while tools
restarts ends as that 502, a memory query as a 503.

Under a traced request each call is a CLIENT span with the rpc.* attributes
(from the global tracer provider, as the OpenTelemetry gRPC interceptors had
it) and carries the W3C trace context in its metadata, so one chat is one
trace through memory and tools. An untraced request pays one context lookup.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.semconv._incubating.attributes.rpc_attributes import (
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from phoenix_common.stubs import memory_pb2, tools_pb2
from phoenix_orchestrator.errors import (
    BackendFailed,
    BackendForbidden,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.settings import GrpcEndpoint, OrchestratorSettings

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)
ReplyT = TypeVar("ReplyT", bound=Message)


@dataclass(frozen=True)
class Rpc(Generic[RequestT, ReplyT]):
    """One unary method, named as the proto declares it."""

    service: str  # the full service name: "memory.MemoryService"
    method: str
    request: type[RequestT]
    reply: type[ReplyT]
    # A call without side effects may run again when its connection was lost
    # after sending; one with side effects (a command) must not.
    idempotent: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


QUERY_MEMORY = Rpc(
    memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
    "QueryMemory",
    memory_pb2.QueryMemoryRequest,
    memory_pb2.QueryMemoryResponse,
    idempotent=True,
)
REQUEST_EXECUTION = Rpc(
    tools_pb2.DESCRIPTOR.services_by_name["ToolExecutorService"].full_name,
    "RequestExecution",
    tools_pb2.ExecutionRequest,
    tools_pb2.ExecutionResponse,
    idempotent=False,
)


def tls_context() -> ssl.SSLContext:
    """TLS 1.2+ against the system's trust store (``SSL_CERT_FILE`` honoured), HTTP/2 by ALPN.

    Not grpclib's default context, which trusts certifi's bundle when certifi is
    installed: a cluster's own CA is installed in the system store.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    return context


def status_of(err: Exception) -> tuple[Status, str]:
    """The gRPC status a failed call ends with, and its details.

    grpclib reports a status only when the server sent one; a connection that
    could not be made or was lost (``OSError``, ``StreamTerminatedError``) is
    UNAVAILABLE, as grpcio reports it, and the deadline passing on our side
    (``TimeoutError``, itself an ``OSError``) is DEADLINE_EXCEEDED.
    """
    if isinstance(err, GRPCError):
        return err.status, err.message or ""
    if isinstance(err, TimeoutError):
        return Status.DEADLINE_EXCEEDED, "deadline exceeded"
    if isinstance(err, ProtocolError):
        return Status.INTERNAL, f"HTTP/2 protocol error: {err}"
    return Status.UNAVAILABLE, f"{type(err).__name__}: {err}"


class _Peer:
    """One service: where it listens, its deadline, and its channel once opened."""

    def __init__(self, name: str, address: str, endpoint: GrpcEndpoint, timeout: float) -> None:
        self.name = name  # "memory" or "tools": the metric label and the reply's wording
        self.address = address  # as configured, for the reply
        self.endpoint = endpoint
        self.timeout = timeout
        self.channel: Channel | None = None

    def method(self, rpc: Rpc[RequestT, ReplyT]) -> UnaryUnaryMethod[RequestT, ReplyT]:
        if self.channel is None:  # no connection yet: grpclib connects on the first call
            self.channel = Channel(
                self.endpoint.host,
                self.endpoint.port,
                ssl=tls_context() if self.endpoint.tls else None,
            )
        return UnaryUnaryMethod(self.channel, rpc.path, rpc.request, rpc.reply)


class Backends:
    """Lazily connected clients of the memory and tools services."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        metrics: Metrics,
        *,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._metrics = metrics
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._memory = _Peer(
            "memory",
            settings.memory_grpc_addr,
            settings.memory_endpoint,
            settings.memory_rpc_timeout_seconds,
        )
        self._tools = _Peer(
            "tools",
            settings.tools_grpc_addr,
            settings.tools_endpoint,
            settings.tools_rpc_timeout_seconds,
        )

    async def close(self) -> None:
        for peer in (self._memory, self._tools):
            if peer.channel is not None:
                peer.channel.close()
                peer.channel = None

    async def query_memory(
        self, *, query: str, namespace: str, twin_id: str, top_k: int
    ) -> memory_pb2.QueryMemoryResponse:
        request = memory_pb2.QueryMemoryRequest(
            query=query, namespace=namespace, twin_id=twin_id, top_k=top_k
        )
        return await self._call(self._memory, QUERY_MEMORY, request)

    async def run_tool(
        self,
        *,
        tool_name: str,
        args: Sequence[str],
        twin_id: str,
        job_id: str,
        namespace: str,
        metadata: Mapping[str, str],
    ) -> tools_pb2.ExecutionResponse:
        request = tools_pb2.ExecutionRequest(
            command=tool_name,
            args=list(args),
            twin_id=twin_id,
            job_id=job_id,
            namespace=namespace,
            metadata=dict(metadata),
        )
        return await self._call(self._tools, REQUEST_EXECUTION, request)

    async def _call(self, peer: _Peer, rpc: Rpc[RequestT, ReplyT], request: RequestT) -> ReplyT:
        if not trace.get_current_span().get_span_context().is_valid:
            return await self._send(peer, rpc, request, None, None)  # untraced: no span, no context
        attributes: dict[str, str | int] = {
            RPC_SYSTEM: "grpc",
            RPC_SERVICE: rpc.service,
            RPC_METHOD: rpc.method,
            SERVER_ADDRESS: peer.endpoint.host,
            SERVER_PORT: peer.endpoint.port,
        }
        with self._tracer.start_as_current_span(
            f"{rpc.service}/{rpc.method}",
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            inject(carrier)  # traceparent (and tracestate, baggage) of this span
            return await self._send(peer, rpc, request, carrier, span)

    async def _send(
        self,
        peer: _Peer,
        rpc: Rpc[RequestT, ReplyT],
        request: RequestT,
        metadata: dict[str, str] | None,
        span: trace.Span | None,
    ) -> ReplyT:
        sent = False
        try:
            async with peer.method(rpc).open(timeout=peer.timeout, metadata=metadata) as stream:
                await stream.send_message(request, end=True)
                sent = True
                reply = await stream.recv_message()
            if reply is None:
                raise GRPCError(Status.INTERNAL, "the server ended the call without a reply")
        except (GRPCError, ProtocolError, StreamTerminatedError, OSError) as err:
            status, details = status_of(err)
            if span is not None:
                span.set_attribute(RPC_GRPC_STATUS_CODE, status.value)
                span.set_status(trace.StatusCode.ERROR, f"{status.name}: {details}"[:500])
            # The connection died after the request went out: the server may have acted
            # on it (a command may have run), so for a call with side effects this is
            # not "unavailable, nothing ran, approve again".
            lost = sent and not isinstance(err, GRPCError) and status == Status.UNAVAILABLE
            lost = lost and not rpc.idempotent
            raise self._mapped(peer, rpc, status, details, err, lost=lost) from None
        if span is not None:
            span.set_attribute(RPC_GRPC_STATUS_CODE, Status.OK.value)
        return reply

    def _mapped(
        self,
        peer: _Peer,
        rpc: Rpc[RequestT, ReplyT],
        status: Status,
        details: str,
        err: Exception,
        *,
        lost: bool,
    ) -> Exception:
        self._metrics.grpc_errors.labels(
            service=peer.name, method=rpc.method, code=status.name
        ).inc()
        fields = {"service": peer.name, "method": rpc.method, "code": status.name}
        if not isinstance(err, GRPCError):  # a server's details may quote the request; this not
            fields["error"] = details
        logger.warning("grpc call failed", extra=fields)
        details = details.strip()[:500]
        if lost:
            return BackendFailed(
                f"The connection to the {peer.name} service was lost after the request was"
                " sent; the outcome is unknown."
            )
        if status == Status.UNAVAILABLE:
            return BackendUnavailable(
                f"The {peer.name} service at {peer.address} is unavailable; try again shortly."
            )
        if status == Status.DEADLINE_EXCEEDED:
            return BackendTimeout(
                f"The {peer.name} service did not answer within {peer.timeout:g}s;"
                " the outcome is unknown."
            )
        if status == Status.INVALID_ARGUMENT:
            return BackendRejected(f"The {peer.name} service rejected the request: {details}")
        if status == Status.PERMISSION_DENIED:
            return BackendForbidden(f"The {peer.name} service refused the request: {details}")
        return BackendFailed(f"The {peer.name} service failed ({status.name}): {details}")
