"""The only module that talks gRPC: memory ``QueryMemory`` and tools ``RequestExecution``.

Channels are opened on first use, never at startup, so the orchestrator
starts while memory or tools are still coming up. Every call has a deadline.
Failures become orchestrator errors with a reply a user can act on:
UNAVAILABLE -> 503, DEADLINE_EXCEEDED -> 504, INVALID_ARGUMENT -> 422,
PERMISSION_DENIED -> 403, anything else -> 502. OpenTelemetry client
interceptors carry the trace context to both services.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc, tools_pb2, tools_pb2_grpc
from phoenix_orchestrator.errors import (
    BackendFailed,
    BackendForbidden,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)


def _channel(target: str, secure: bool) -> grpc.aio.Channel:
    interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
    if secure:
        return grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(), interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, interceptors=interceptors)


class Backends:
    """Lazily connected clients of the memory and tools services."""

    def __init__(self, settings: OrchestratorSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._memory_channel: grpc.aio.Channel | None = None
        self._tools_channel: grpc.aio.Channel | None = None

    def _memory(self) -> Any:
        if self._memory_channel is None:
            self._memory_channel = _channel(
                self._settings.memory_target,
                self._settings.memory_grpc_addr.startswith("https://"),
            )
        return memory_pb2_grpc.MemoryServiceStub(self._memory_channel)  # type: ignore[no-untyped-call]

    def _tools(self) -> Any:
        if self._tools_channel is None:
            self._tools_channel = _channel(
                self._settings.tools_target, self._settings.tools_grpc_addr.startswith("https://")
            )
        return tools_pb2_grpc.ToolExecutorServiceStub(self._tools_channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        for channel in (self._memory_channel, self._tools_channel):
            if channel is not None:
                await channel.close()
        self._memory_channel = self._tools_channel = None

    async def query_memory(
        self, *, query: str, namespace: str, twin_id: str, top_k: int
    ) -> memory_pb2.QueryMemoryResponse:
        request = memory_pb2.QueryMemoryRequest(
            query=query, namespace=namespace, twin_id=twin_id, top_k=top_k
        )
        timeout = self._settings.memory_rpc_timeout_seconds
        try:
            response: memory_pb2.QueryMemoryResponse = await self._memory().QueryMemory(
                request, timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise self._mapped(err, "memory", "QueryMemory", timeout) from None
        return response

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
        timeout = self._settings.tools_rpc_timeout_seconds
        try:
            response: tools_pb2.ExecutionResponse = await self._tools().RequestExecution(
                request, timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise self._mapped(err, "tools", "RequestExecution", timeout) from None
        return response

    def _mapped(
        self, err: grpc.aio.AioRpcError, service: str, method: str, timeout: float
    ) -> Exception:
        code = err.code()
        self._metrics.grpc_errors.labels(service=service, method=method, code=code.name).inc()
        logger.warning(
            "grpc call failed",
            extra={"service": service, "method": method, "code": code.name},
        )
        address = (
            self._settings.memory_grpc_addr
            if service == "memory"
            else self._settings.tools_grpc_addr
        )
        details = (err.details() or "").strip()[:500]
        if code == grpc.StatusCode.UNAVAILABLE:
            return BackendUnavailable(
                f"The {service} service at {address} is unavailable; try again shortly."
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return BackendTimeout(
                f"The {service} service did not answer within {timeout:g}s; the outcome is unknown."
            )
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return BackendRejected(f"The {service} service rejected the request: {details}")
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return BackendForbidden(f"The {service} service refused the request: {details}")
        return BackendFailed(f"The {service} service failed ({code.name}): {details}")
