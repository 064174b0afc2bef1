"""Running an approved request against memory or tools, and the replies it produces.

Each run also yields an *observation*: what the planner is shown of the result
when the agent loop continues (bounded, so a large tool output cannot flood
the model's context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from phoenix_orchestrator.api import ChatResponse, ToolResult
from phoenix_orchestrator.approvals import ApprovalRequest
from phoenix_orchestrator.errors import ReplyError
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.settings import OrchestratorSettings
from phoenix_orchestrator.tool_args import execution_args

if TYPE_CHECKING:
    from phoenix_orchestrator.backends import Backends


MAX_OBSERVATION_CHARS = 4_000


@dataclass(frozen=True)
class ObservedReply:
    """The reply to show and, when the planner should see it, the observation."""

    reply: ChatResponse
    observation: str | None


def bounded(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more chars]"


def denied(target: ApprovalRequest, job_id: str) -> ChatResponse:
    """The reply to the denial of one request."""
    if target.kind == "tool":
        return tool_denied(target.tool_name or "", job_id, target)
    return memory_denied(target.request_id, job_id, target)


def tool_denied(tool_name: str, job_id: str, target: ApprovalRequest | None) -> ChatResponse:
    """``Tool '<t>' execution denied.``: the original's reply, also when nothing was pending."""
    return ChatResponse(
        response=f"Tool '{tool_name}' execution denied.",
        job_id=job_id,
        actions_taken=[f"Tool denied: {tool_name}"],
        raw_orchestrator_decision=target.raw_decision if target else None,
        request_id=target.request_id if target else None,
    )


def memory_denied(memory_id: str, job_id: str, target: ApprovalRequest | None) -> ChatResponse:
    """``Memory request '<id>' denied.``: the original's reply, also when nothing was pending."""
    return ChatResponse(
        response=f"Memory request '{memory_id}' denied.",
        job_id=job_id,
        actions_taken=[f"Memory denied: {memory_id}"],
        raw_orchestrator_decision=target.raw_decision if target else None,
        request_id=target.request_id if target else None,
    )


class Executor:
    """Executes approved requests; the only caller of ``Backends``.

    The gRPC clients (grpclib and h2, about 5 MiB) are loaded on the first
    approved run, not at startup: a process that only chats never needs them.
    """

    def __init__(self, settings: OrchestratorSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._top_k = settings.memory_top_k
        self._loaded: Backends | None = None

    @property
    def _backends(self) -> Backends:
        if self._loaded is None:
            from phoenix_orchestrator.backends import Backends  # noqa: PLC0415 - see above

            self._loaded = Backends(self._settings, self._metrics)
        return self._loaded

    async def close(self) -> None:
        if self._loaded is not None:
            await self._loaded.close()

    async def run(self, target: ApprovalRequest, *, actor: str, job_id: str) -> ObservedReply:
        if target.kind == "memory":
            return await self._query_memory(target, job_id)
        return await self._run_tool(target, actor=actor, job_id=job_id)

    async def _query_memory(self, target: ApprovalRequest, job_id: str) -> ObservedReply:
        query = target.effective_query
        try:
            found = await self._backends.query_memory(
                query=query, namespace=target.namespace, twin_id=target.twin_id, top_k=self._top_k
            )
        except ReplyError as err:
            message = f"Memory query failed: {err}"
            raise type(err)(message, actions_taken=[message]) from None
        count = len(found.results)
        top = found.results[0].content if found.results else "No results"
        lines = [f"Memory search for '{query}' returned {count} result(s)."]
        lines += [f"{n}. {result.content}" for n, result in enumerate(found.results, start=1)]
        reply = ChatResponse(
            response=f"Found {count} memory results for query '{query}'. Top result: {top}",
            job_id=job_id,
            actions_taken=[f"Memory query authorized: {count} results"],
            raw_orchestrator_decision=target.raw_decision,
            request_id=target.request_id,
            source_memories=[result.id for result in found.results],
        )
        return ObservedReply(reply, bounded("\n".join(lines)))

    async def _run_tool(self, target: ApprovalRequest, *, actor: str, job_id: str) -> ObservedReply:
        tool = target.tool_name or ""
        try:
            result = await self._backends.run_tool(
                tool_name=tool,
                args=execution_args(tool, target.effective_arguments),
                twin_id=target.twin_id,
                job_id=job_id,
                namespace=target.namespace,
                metadata={
                    "request_id": target.request_id,
                    "approved_by": actor,
                    "arguments_hash": target.approved_hash or target.arguments_hash,
                },
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
        reply = ChatResponse(
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
        observation = (
            f"Tool {tool} finished with exit code {result.exit_code} "
            f"({'success' if result.success else 'failure'}: {result.message}).\n"
            "stdout:\n"
            + "\n".join(result.stdout_logs)
            + "\nstderr:\n"
            + "\n".join(result.stderr_logs)
        )
        return ObservedReply(reply, bounded(observation))
