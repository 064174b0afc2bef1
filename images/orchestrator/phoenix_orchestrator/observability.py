"""Prometheus metrics of one orchestrator app, in a registry of its own.

A registry per app (not the process-global one) lets tests build many apps in
one process; ``/metrics`` serves exactly this registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    """Counters and histograms the orchestrator exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "phoenix_orchestrator_requests_total",
            "HTTP requests handled, by route and status code.",
            ["route", "status_code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "phoenix_orchestrator_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "phoenix_orchestrator_decisions_total",
            "Planner decisions, by action type and the planner that made them.",
            ["action_type", "planner"],
            registry=self.registry,
        )
        self.approvals = Counter(
            "phoenix_orchestrator_approvals_total",
            "Approval requests resolved, by kind (memory, tool) and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.llm_requests = Counter(
            "phoenix_orchestrator_llm_requests_total",
            "LLM planning calls, by outcome (ok or the failure reason).",
            ["outcome"],
            registry=self.registry,
        )
        self.llm_fallbacks = Counter(
            "phoenix_orchestrator_llm_fallbacks_total",
            "LLM failures answered by the deterministic planner instead, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.grpc_errors = Counter(
            "phoenix_orchestrator_grpc_errors_total",
            "Failed gRPC calls to memory and tools, by service, method and status code.",
            ["service", "method", "code"],
            registry=self.registry,
        )
