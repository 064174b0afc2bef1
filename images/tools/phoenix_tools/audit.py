"""The audit record of every execution: one structured log line plus Prometheus metrics.

Fields (docs/tools.md lists them): execution_id, twin, job_id, tool, argv,
programs (the resolved programs the policy checked), decision, rule, sandbox,
exit_code, timed_out, duration_ms, stdout_bytes, stderr_bytes, truncated,
outcome. Environment values are never logged (the sandbox gets none from the
request anyway), and file_write content is summarised as its size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

logger = logging.getLogger("phoenix_tools.audit")
MAX_LOGGED_ARG = 512

EXECUTIONS = Counter(
    "phoenix_tools_executions_total",
    "Tool requests by tool, policy decision, sandbox mode and outcome.",
    ["tool", "decision", "sandbox", "outcome"],
)
DENIALS = Counter(
    "phoenix_tools_policy_denials_total", "Policy denials by kind of rule.", ["rule_kind"]
)
DURATION = Histogram(
    "phoenix_tools_execution_duration_seconds",
    "Wall time of allowed executions.",
    ["tool", "sandbox"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OUTPUT_BYTES = Counter(
    "phoenix_tools_output_bytes_total", "Bytes written by commands, per stream.", ["stream"]
)


@dataclass(frozen=True)
class AuditRecord:
    execution_id: str
    twin: str
    job_id: str
    tool: str
    argv: Sequence[str]
    allowed: bool
    rule: str
    sandbox: str
    exit_code: int
    duration_ms: int
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    timed_out: bool = False
    outcome: str = "completed"
    programs: Sequence[str] = ()


def record(entry: AuditRecord) -> None:
    """Log and count one execution."""
    decision = "allow" if entry.allowed else "deny"
    EXECUTIONS.labels(entry.tool, decision, entry.sandbox, entry.outcome).inc()
    if not entry.allowed:
        DENIALS.labels(entry.rule.split(":", 1)[0]).inc()
    else:
        DURATION.labels(entry.tool, entry.sandbox).observe(entry.duration_ms / 1000)
        OUTPUT_BYTES.labels("stdout").inc(entry.stdout_bytes)
        OUTPUT_BYTES.labels("stderr").inc(entry.stderr_bytes)
    logger.info(
        "tool execution",
        extra={
            "execution_id": entry.execution_id,
            "twin": entry.twin,
            "job_id": entry.job_id,
            "tool": entry.tool,
            "argv": [a[:MAX_LOGGED_ARG] for a in entry.argv[:64]],
            "programs": list(entry.programs),
            "decision": decision,
            "rule": entry.rule,
            "sandbox": entry.sandbox,
            "exit_code": entry.exit_code,
            "timed_out": entry.timed_out,
            "duration_ms": entry.duration_ms,
            "stdout_bytes": entry.stdout_bytes,
            "stderr_bytes": entry.stderr_bytes,
            "truncated": entry.truncated,
            "outcome": entry.outcome,
        },
    )
