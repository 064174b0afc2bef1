"""Tokens and cost of LLM calls: Prometheus counters per twin and model, GenAI span attributes.

Names follow the OpenTelemetry GenAI semantic conventions: the span of a call
is ``chat <model>`` with ``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``; the histogram
``gen_ai_client_token_usage`` has ``gen_ai_token_type`` ``input`` (the prompt)
or ``output`` (the completion). The cost estimate comes from ``LLM_PRICES`` (USD
per million tokens, by model); a model with no price is counted in tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from phoenix_orchestrator.observability import Metrics

MAX_TWIN_LABELS = 64  # a label per twin; more distinct twins than this are counted as "other"


class ModelPrice(BaseModel):
    """What a model costs, in USD per million tokens."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    input_per_million: float = Field(ge=0, le=10_000)
    output_per_million: float = Field(ge=0, le=10_000)


@dataclass(frozen=True)
class Usage:
    """Tokens one chat-completions call reported."""

    input_tokens: int
    output_tokens: int
    response_model: str | None = None
    finish_reason: str | None = None

    @classmethod
    def from_payload(cls, payload: Any) -> Usage | None:
        """``usage`` of a completion (or of a stream's last chunk), if it reports one."""
        if not isinstance(payload, dict):
            return None
        usage = payload.get("usage")
        if not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        model = payload.get("model")
        return cls(max(prompt, 0), max(completion, 0), model if isinstance(model, str) else None)


def cost_usd(usage: Usage, price: ModelPrice) -> float:
    """The estimated cost of one call."""
    return (
        usage.input_tokens * price.input_per_million
        + usage.output_tokens * price.output_per_million
    ) / 1_000_000


class UsageMeter:
    """Records usage in the metrics and on the current GenAI span."""

    def __init__(self, metrics: Metrics, prices: dict[str, ModelPrice], provider: str) -> None:
        self._metrics = metrics
        self._prices = prices
        self._provider = provider
        self._twins: set[str] = set()

    def _twin_label(self, twin_id: str) -> str:
        if twin_id in self._twins or len(self._twins) < MAX_TWIN_LABELS:
            self._twins.add(twin_id)
            return twin_id
        return "other"

    def span_attributes(self, model: str, temperature: float) -> dict[str, Any]:
        """The request's GenAI attributes, set when the span starts."""
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self._provider,
            "gen_ai.request.model": model,
            "gen_ai.request.temperature": temperature,
            "gen_ai.output.type": "json",
        }

    def record(self, twin_id: str, model: str, usage: Usage, span: Span | None) -> float | None:
        """Count the tokens (and the cost, when the model has a price); returns the cost."""
        twin = self._twin_label(twin_id)
        metrics = self._metrics
        response_model = usage.response_model or model
        for token_type, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            metrics.llm_tokens.labels(twin=twin, model=model, token_type=token_type).inc(count)
            metrics.genai_token_usage.labels(
                gen_ai_operation_name="chat",
                gen_ai_provider_name=self._provider,
                gen_ai_request_model=model,
                gen_ai_response_model=response_model,
                gen_ai_token_type=token_type,
            ).observe(count)
        price = self._prices.get(model)
        cost = cost_usd(usage, price) if price is not None else None
        if cost is not None:
            metrics.llm_cost.labels(twin=twin, model=model).inc(cost)
        if span is not None and span.is_recording():
            span.set_attributes(
                {
                    "gen_ai.response.model": response_model,
                    "gen_ai.usage.input_tokens": usage.input_tokens,
                    "gen_ai.usage.output_tokens": usage.output_tokens,
                    "phoenix.twin_id": twin_id,
                    **({"phoenix.llm.cost_usd": cost} if cost is not None else {}),
                    **(
                        {"gen_ai.response.finish_reasons": [usage.finish_reason]}
                        if usage.finish_reason
                        else {}
                    ),
                }
            )
        return cost
