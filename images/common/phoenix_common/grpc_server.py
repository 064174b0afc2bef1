"""What every PhoenixTwin gRPC server shares: health, reflection, error mapping, shutdown.

A servicer only translates proto in, domain call, proto out; domain errors
(``phoenix_common.errors``) become status codes here, in one place, and an
unexpected exception becomes a generic INTERNAL while its traceback goes to the log.
A request body that is not a valid message of the method's type (corrupt wire
format, invalid UTF-8 in a string field) is INVALID_ARGUMENT too: grpc.aio would
otherwise answer UNKNOWN with the decoder's exception text.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from phoenix_common.errors import PhoenixError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)


class _Undecodable:
    """What a request deserializer returns instead of raising on a corrupt message."""


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return _Undecodable()

    return deserialize


Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class _UnaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps each unary-unary method's behaviour in ``wrap``; other handlers pass as they are."""

    # Whether an undecodable request reaches the behaviour as an _Undecodable.
    tolerant_requests = False

    @abc.abstractmethod
    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        """``behaviour`` of ``method`` (grpc's ``/package.Service/Method``), wrapped."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        deserializer = handler.request_deserializer
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(handler.unary_unary, handler_call_details.method),
            request_deserializer=_tolerant(deserializer)
            if self.tolerant_requests
            else deserializer,
            response_serializer=handler.response_serializer,
        )


class ErrorMappingInterceptor(_UnaryInterceptor):
    """Aborts with the status code of a ``PhoenixError``; hides anything else behind INTERNAL."""

    tolerant_requests = True

    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request is not a valid message for {method}: it cannot be decoded",
                )
            try:
                return await behaviour(request, context)
            except PhoenixError as err:
                await context.abort(err.grpc_status, str(err))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception:
                logger.exception("unhandled error in rpc", extra={"method": method})
                await context.abort(grpc.StatusCode.INTERNAL, "internal server error")

        return unary_unary


class RpcSpanNameInterceptor(_UnaryInterceptor):
    """Names the server span ``package.Service/Method``, as the OpenTelemetry RPC conventions
    (and PhoenixTwin's client spans) do; the instrumentation's interceptor keeps grpc's
    leading ``/``. It runs inside that interceptor's span, so only when tracing is on."""

    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        name = method.lstrip("/")

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            trace.get_current_span().update_name(name)
            return await behaviour(request, context)

        return unary_unary


def add_standard_services(
    server: grpc.aio.Server, service_names: Sequence[str]
) -> AsyncHealthServicer:
    """Serve grpc.health.v1 and server reflection beside the component's own services.

    Every named service starts NOT_SERVING; the component flips it to SERVING
    once its dependencies are ready.
    """
    checker = AsyncHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return checker


async def set_serving(
    checker: AsyncHealthServicer, service_names: Sequence[str], serving: bool
) -> None:
    """Report every named service, and the server as a whole (""), as (NOT_)SERVING."""
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *service_names):
        await checker.set(name, status)


def new_server(
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    tracer_provider: TracerProvider | None = None,
) -> grpc.aio.Server:
    """A grpc.aio server that maps domain errors to status codes, and with a
    ``tracer_provider`` (configure_tracing's, when spans are exported) continues callers'
    traces.

    OpenTelemetry's interceptor is outermost, so a span covers the whole call and
    records the status code the error mapping produced; the next one names the span.
    Without a provider both are left out: the spans would be no-ops, yet the interceptor
    wraps every call (0.27 ms per call on a no-op call here, 2.12 against 2.38 ms;
    docs/tools.md).
    """
    outer: list[grpc.aio.ServerInterceptor] = (
        [
            aio_server_interceptor(tracer_provider=tracer_provider),  # type: ignore[no-untyped-call]
            RpcSpanNameInterceptor(),
        ]
        if tracer_provider is not None
        else []
    )
    return grpc.aio.server(
        interceptors=[*outer, ErrorMappingInterceptor(), *interceptors],
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )


async def serve_until_signalled(
    server: grpc.aio.Server,
    checker: AsyncHealthServicer,
    *,
    grace_seconds: float = 5.0,
) -> None:
    """Run until SIGTERM/SIGINT, then report NOT_SERVING and stop with a grace period."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down", extra={"grace_seconds": grace_seconds})
    await checker.enter_graceful_shutdown()
    await server.stop(grace_seconds)
