"""One tool request end to end: validate, decide, run, audit.

The gRPC servicer hands a validated request here and gets an ``ExecutionResult`` it
turns into an ExecutionResponse. A policy denial is an ordinary response
(``success=false``, ``exit_code=1``, ``stderr_logs=["Policy violation: ..."]``)
as in the original; malformed input and a missing sandbox are gRPC errors.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field, replace

from phoenix_common.errors import InvalidInput, PhoenixError
from phoenix_tools import audit, policy, tool_args, vector_query, workdir
from phoenix_tools.policy import PolicyOptions
from phoenix_tools.policy_store import PolicyStore
from phoenix_tools.requests import ToolRequest
from phoenix_tools.runtime import SandboxRuntime


@dataclass(frozen=True)
class ExecutionResult:
    success: bool
    exit_code: int
    message: str
    execution_id: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


class ToolExecutor:
    def __init__(
        self,
        runtime: SandboxRuntime,
        policies: PolicyStore,
        options: PolicyOptions,
        memory: vector_query.MemoryClient,
    ) -> None:
        self.runtime = runtime
        self.policies = policies
        self.options = options
        self.memory = memory

    async def execute(self, request: ToolRequest) -> ExecutionResult:
        execution_id = uuid.uuid4().hex
        started = time.monotonic()
        document = self.policies.current()
        # An unknown twin is a policy denial (success=false, "Policy violation: ..."), as the
        # original answers it and its clients expect, not a malformed request.
        evaluation = policy.evaluate(
            request.twin_id, request.command, request.args, document, self.options
        )
        decision = evaluation.decision
        template = audit.AuditRecord(
            execution_id=execution_id,
            twin=request.twin_id,
            job_id=request.job_id,
            tool=_tool_label(request.command),
            argv=_audited_argv(request),
            allowed=decision.allowed,
            rule=decision.rule,
            sandbox=self.runtime.mode,
            exit_code=1,
            duration_ms=0,
        )
        if evaluation.plan is None:
            audit.record(replace(template, outcome="denied"))
            stderr = [f"Policy violation: {decision.reason}"]
            return ExecutionResult(False, 1, decision.reason, execution_id, [], stderr)
        plan = evaluation.plan
        try:
            if plan.kind == "file_write":
                outcome = await self._file_write(request, execution_id)
            elif plan.kind == "vector_query":
                outcome = await self._vector_query(request, execution_id)
            else:
                return await self._exec(request, plan, template)
        except PhoenixError as err:
            elapsed = int((time.monotonic() - started) * 1000)
            outcome_name = f"error:{type(err).__name__}"
            audit.record(replace(template, outcome=outcome_name, duration_ms=elapsed))
            raise
        audit.record(
            replace(
                template,
                exit_code=outcome.exit_code,
                duration_ms=int((time.monotonic() - started) * 1000),
                stdout_bytes=sum(len(line) + 1 for line in outcome.stdout),
                outcome="completed" if outcome.success else "failed",
            )
        )
        return outcome

    async def _exec(
        self, request: ToolRequest, plan: policy.ExecutionPlan, template: audit.AuditRecord
    ) -> ExecutionResult:
        execution_id = template.execution_id
        program = plan.program
        if program is not None and not program.found and not program.builtin:
            message = f"Command not found: {program.given}"
            audit.record(replace(template, exit_code=127, outcome="failed"))
            return ExecutionResult(False, 127, message, execution_id, [], [message])
        result = await self.runtime.run(request.twin_id, plan.argv, execution_id=execution_id)
        audit.record(
            replace(
                template,
                argv=plan.argv,
                programs=plan.programs_checked,
                exit_code=result.exit_code,
                duration_ms=result.duration_ms,
                stdout_bytes=result.stdout_bytes,
                stderr_bytes=result.stderr_bytes,
                truncated=result.truncated,
                timed_out=result.timed_out,
                outcome=result.outcome,
            )
        )
        return ExecutionResult(
            result.success,
            result.exit_code,
            result.message,
            execution_id,
            result.stdout,
            result.stderr,
        )

    async def _file_write(self, request: ToolRequest, execution_id: str) -> ExecutionResult:
        parsed = tool_args.file_write(request.args)
        relative, content = parsed.path, parsed.content
        workspace = self.runtime.workspace(request.twin_id)
        written = await asyncio.to_thread(workdir.write_file, workspace, relative, content)
        message = f"Wrote {written} bytes to {workdir.WORKSPACE}/{relative.strip('/')}"
        return ExecutionResult(True, 0, message, execution_id, [message], [])

    async def _vector_query(self, request: ToolRequest, execution_id: str) -> ExecutionResult:
        query = vector_query.parse_args(request.args, request.namespace)
        lines = await self.memory.query(request.twin_id, query)
        return ExecutionResult(
            True, 0, f"vector_query returned {len(lines)} results", execution_id, lines, []
        )


def _audited_argv(request: ToolRequest) -> tuple[str, ...]:
    """The request as the audit log shows it: file contents are summarised, never logged."""
    if request.command == policy.FILE_WRITE:
        try:
            parsed = tool_args.file_write(request.args)
        except InvalidInput:
            return (request.command, f"<{len(request.args)} unreadable args>")
        return (request.command, parsed.path, f"<{len(parsed.content.encode())} bytes>")
    return (request.command, *request.args)


def _tool_label(command: str) -> str:
    """A bounded metrics label: the tool name, or "program" for direct programs."""
    return command if command in policy.TOOLS else "program"
