"""Running an approved request against memory or tools, and the replies it produces."""

from __future__ import annotations

from phoenix_orchestrator.api import ChatResponse, ToolResult
from phoenix_orchestrator.approvals import ApprovalRequest
from phoenix_orchestrator.backends import Backends, execution_args
from phoenix_orchestrator.errors import ReplyError
from phoenix_orchestrator.settings import OrchestratorSettings


def denied(target: ApprovalRequest, job_id: str) -> ChatResponse:
    """The reply to a denial."""
    if target.kind == "tool":
        return ChatResponse(
            response=f"Tool '{target.tool_name}' execution denied.",
            job_id=job_id,
            actions_taken=[f"Tool denied: {target.tool_name}"],
            raw_orchestrator_decision=target.raw_decision,
            request_id=target.request_id,
        )
    return ChatResponse(
        response=f"Memory request '{target.request_id}' denied.",
        job_id=job_id,
        actions_taken=[f"Memory denied: {target.request_id}"],
        raw_orchestrator_decision=target.raw_decision,
        request_id=target.request_id,
    )


class Executor:
    """Executes approved requests; the only caller of ``Backends``."""

    def __init__(self, backends: Backends, settings: OrchestratorSettings) -> None:
        self._backends = backends
        self._top_k = settings.memory_top_k

    async def run(self, target: ApprovalRequest, *, actor: str, job_id: str) -> ChatResponse:
        if target.kind == "memory":
            return await self._query_memory(target, job_id)
        return await self._run_tool(target, actor=actor, job_id=job_id)

    async def _query_memory(self, target: ApprovalRequest, job_id: str) -> ChatResponse:
        query = target.query or ""
        try:
            found = await self._backends.query_memory(
                query=query, namespace=target.namespace, twin_id=target.twin_id, top_k=self._top_k
            )
        except ReplyError as err:
            message = f"Memory query failed: {err}"
            raise type(err)(message, actions_taken=[message]) from None
        count = len(found.results)
        top = found.results[0].content if found.results else "No results"
        return ChatResponse(
            response=f"Found {count} memory results for query '{query}'. Top result: {top}",
            job_id=job_id,
            actions_taken=[f"Memory query authorized: {count} results"],
            raw_orchestrator_decision=target.raw_decision,
            request_id=target.request_id,
            source_memories=[result.id for result in found.results],
        )

    async def _run_tool(self, target: ApprovalRequest, *, actor: str, job_id: str) -> ChatResponse:
        tool = target.tool_name or ""
        try:
            result = await self._backends.run_tool(
                tool_name=tool,
                args=execution_args(tool, target.arguments),
                twin_id=target.twin_id,
                job_id=job_id,
                namespace=target.namespace,
                metadata={"request_id": target.request_id, "approved_by": actor},
            )
        except ReplyError as err:
            raise type(err)(
                f"Tool '{tool}' execution failed: {err}", actions_taken=["Tool execution failed"]
            ) from None
        tool_result = ToolResult(
            success=result.success,
            exit_code=result.exit_code,
            stdout=list(result.stdout_logs),
            stderr=list(result.stderr_logs),
            message=result.message,
            execution_id=result.execution_id,
        )
        if result.success:
            response = f"Tool '{tool}' executed successfully. Output:\n" + "\n".join(
                result.stdout_logs
            )
            outcome = "completed"
        else:
            response = f"Tool '{tool}' execution failed: {result.message}"
            if result.stderr_logs:
                response += "\n" + "\n".join(result.stderr_logs)
            outcome = "failed"
        return ChatResponse(
            response=response,
            job_id=job_id,
            actions_taken=[
                f"Tool execution: {tool} authorized",
                f"Tool execution: {tool} {outcome}",
            ],
            raw_orchestrator_decision=target.raw_decision,
            request_id=target.request_id,
            tool_result=tool_result,
        )
