"""The gRPC edge: ToolExecutorService plus grpc.health.v1 and reflection.

The servicer only translates: proto in, ``ToolExecutor`` call, proto out.
Errors are mapped to status codes by phoenix_common's interceptor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health

from phoenix_common import grpc_server
from phoenix_common.stubs import tools_pb2, tools_pb2_grpc
from phoenix_tools import __version__, requests, selftest
from phoenix_tools.executor import ToolExecutor
from phoenix_tools.policy import PolicyOptions
from phoenix_tools.policy_store import PolicyStore
from phoenix_tools.runtime import SandboxRuntime
from phoenix_tools.settings import ToolsSettings
from phoenix_tools.vector_query import MemoryClient

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

SERVICE_NAME = tools_pb2.DESCRIPTOR.services_by_name["ToolExecutorService"].full_name


class ToolExecutorServicer(tools_pb2_grpc.ToolExecutorServiceServicer):
    def __init__(self, executor: ToolExecutor) -> None:
        self._executor = executor

    async def RequestExecution(
        self, request: tools_pb2.ExecutionRequest, context: grpc.aio.ServicerContext
    ) -> tools_pb2.ExecutionResponse:
        valid = requests.validate(
            twin_id=request.twin_id,
            command=request.command,
            args=list(request.args),
            job_id=request.job_id,
            namespace=request.namespace,
            metadata=dict(request.metadata),
        )
        outcome = await self._executor.execute(valid)
        return tools_pb2.ExecutionResponse(
            success=outcome.success,
            exit_code=outcome.exit_code,
            stdout_logs=outcome.stdout,
            stderr_logs=outcome.stderr,
            message=outcome.message,
            execution_id=outcome.execution_id,
        )

    async def HealthCheck(
        self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> tools_pb2.HealthCheckResponse:
        runtime = self._executor.runtime
        status = "healthy" if runtime.mode == "bwrap" else "degraded"
        if runtime.mode == "unavailable":
            status = "unhealthy"
        summary = (
            "Tool executor service cannot run commands"
            if runtime.mode == "unavailable"
            else "Tool executor service is operational"
        )
        message = (
            f"{summary}; sandbox={runtime.mode} "
            f"({runtime.mode_reason}); policy={self._executor.policies.source}; "
            f"safe_mode={str(self._executor.options.safe_mode).lower()}"
        )
        return tools_pb2.HealthCheckResponse(status=status, version=__version__, message=message)


@dataclass
class ToolsServer:
    """A started server: its port, health servicer and the pieces tests look at."""

    server: grpc.aio.Server
    port: int
    checker: health.aio.HealthServicer
    executor: ToolExecutor

    async def stop(self, grace: float = 1.0) -> None:
        await self.checker.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.executor.runtime.close()
        await self.executor.memory.close()


async def start(
    settings: ToolsSettings, *, tracer_provider: TracerProvider | None = None
) -> ToolsServer:
    """Build, start, self-test; SERVING only once the sandbox mode is known and usable.

    With a ``tracer_provider`` (configure_tracing's, when spans are exported), each call is
    a server span continuing the caller's trace; without one, no tracing interceptor runs.
    Raises PolicyFileError for a bad policy file (a configuration error).
    """
    policies = PolicyStore(settings.policy_file)
    runtime = SandboxRuntime(settings)
    runtime.prepare()
    options = PolicyOptions(
        safe_mode=settings.safe_mode, allow_restricted=settings.allow_restricted_commands
    )
    memory = MemoryClient(settings.memory_grpc_addr, settings.memory_timeout_ms / 1000)
    executor = ToolExecutor(runtime, policies, options, memory)
    server = grpc_server.new_server(tracer_provider=tracer_provider)
    servicer = ToolExecutorServicer(executor)
    tools_pb2_grpc.add_ToolExecutorServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    checker = grpc_server.add_standard_services(server, [SERVICE_NAME])
    await grpc_server.set_serving(checker, [SERVICE_NAME], serving=False)
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    mode, _ = await selftest.run_selftest(runtime)
    await grpc_server.set_serving(checker, [SERVICE_NAME], serving=mode != "unavailable")
    return ToolsServer(server, port, checker, executor)
