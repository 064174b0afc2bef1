"""Prometheus metrics of one orchestrator app, in a registry of its own.

A registry per app (not the process-global one) lets tests build many apps in
one process; ``/metrics`` serves exactly this registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Bucket boundaries the GenAI semantic conventions advise for gen_ai.client.token.usage.
GENAI_TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))


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
        self.llm_tokens = Counter(
            "phoenix_orchestrator_llm_tokens_total",
            "LLM tokens by twin, model and type (input: the prompt, output: the completion).",
            ["twin", "model", "token_type"],
            registry=self.registry,
        )
        self.llm_cost = Counter(
            "phoenix_orchestrator_llm_cost_usd_total",
            "Estimated LLM cost in US dollars (LLM_PRICES), by twin and model.",
            ["twin", "model"],
            registry=self.registry,
        )
        # The OpenTelemetry GenAI metric gen_ai.client.token.usage, in Prometheus form.
        self.genai_token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per GenAI operation (OpenTelemetry GenAI semantic conventions).",
            [
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "gen_ai_response_model",
                "gen_ai_token_type",
            ],
            buckets=GENAI_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.agent_steps = Counter(
            "phoenix_orchestrator_agent_steps_total",
            "Agent loop steps, by what the step did (respond, ask, run, deny, refuse, limit).",
            ["outcome"],
            registry=self.registry,
        )
        self.streams_cancelled = Counter(
            "phoenix_orchestrator_chat_streams_cancelled_total",
            "Streamed chat replies whose client went away before the reply was complete.",
            registry=self.registry,
        )
        self.grpc_errors = Counter(
            "phoenix_orchestrator_grpc_errors_total",
            "Failed gRPC calls to memory and tools, by service, method and status code.",
            ["service", "method", "code"],
            registry=self.registry,
        )
