"""Tokens and cost per twin and model: Prometheus counters and GenAI span attributes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from phoenix_orchestrator.planning import llm as llm_module
from phoenix_orchestrator.planning.usage import ModelPrice, Usage, cost_usd
from tests.orchestrator.conftest import FakeLLM, Starter, action, completion, metric_value, streamed

PRICES = {"test/model": {"inputPerMillion": 2.0, "outputPerMillion": 8.0}}
USAGE = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}


def settings(fake_llm: FakeLLM, **extra: Any) -> dict[str, Any]:
    return {
        "llm_provider": "openrouter",
        "openrouter_api_key": "k-test",
        "openrouter_url": fake_llm.url,
        "openrouter_model": "test/model",
        "llm_prices": PRICES,
        **extra,
    }


async def chat(client: httpx.AsyncClient, twin: str, message: str = "hello") -> None:
    reply = await client.post(
        "/chat", json={"message": message, "twin_id": twin, "session_id": "s"}
    )
    assert reply.status_code == 200, reply.text


def test_cost_is_tokens_times_the_price_per_million() -> None:
    price = ModelPrice.model_validate({"inputPerMillion": 2.0, "outputPerMillion": 8.0})
    assert cost_usd(Usage(1000, 500), price) == pytest.approx(0.006)
    assert cost_usd(Usage(0, 0), price) == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_tokens_and_cost_are_counted_per_twin_and_model(
    start: Starter, fake_llm: FakeLLM, stream: bool
) -> None:
    answer = action("ActionResponse", content="hi")
    reply = streamed(answer, usage=USAGE) if stream else completion(answer, usage=USAGE)
    fake_llm.script = [reply, reply, reply]
    async with start(**settings(fake_llm, llm_stream=stream)) as client:
        await chat(client, "twin-a")
        await chat(client, "twin-a")
        await chat(client, "twin-b")
        text = (await client.get("/metrics")).text
    tokens = "phoenix_orchestrator_llm_tokens_total"
    labels = {"model": "test/model"}
    assert metric_value(text, tokens, twin="twin-a", token_type="input", **labels) == 2000  # noqa: S106 - a metric label, not a secret
    assert metric_value(text, tokens, twin="twin-a", token_type="output", **labels) == 1000  # noqa: S106 - a metric label, not a secret
    assert metric_value(text, tokens, twin="twin-b", token_type="input", **labels) == 1000  # noqa: S106 - a metric label, not a secret
    cost = "phoenix_orchestrator_llm_cost_usd_total"
    assert metric_value(text, cost, twin="twin-a", **labels) == pytest.approx(0.012)
    assert metric_value(text, cost, twin="twin-b", **labels) == pytest.approx(0.006)
    genai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openrouter",
        "gen_ai_request_model": "test/model",
        "gen_ai_response_model": "test/model-2026",
    }
    assert (
        metric_value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **genai)  # noqa: S106 - a metric label, not a secret
        == 3000
    )
    assert (
        metric_value(text, "gen_ai_client_token_usage_count", gen_ai_token_type="output", **genai)  # noqa: S106 - a metric label, not a secret
        == 3
    )


async def test_a_model_without_a_price_counts_tokens_but_no_cost(
    start: Starter, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [completion(action("ActionResponse", content="hi"), usage=USAGE)]
    async with start(**settings(fake_llm, llm_prices={})) as client:
        await chat(client, "twin-a")
        text = (await client.get("/metrics")).text
    assert (
        metric_value(
            text,
            "phoenix_orchestrator_llm_tokens_total",
            twin="twin-a",
            token_type="input",  # noqa: S106 - a metric label, not a secret
        )
        == 1000
    )
    assert "phoenix_orchestrator_llm_cost_usd_total{" not in text


async def test_the_llm_call_is_a_genai_span_with_usage(
    start: Starter, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(llm_module, "tracer", provider.get_tracer("test"))
    fake_llm.script = [streamed(action("ActionResponse", content="hi"), usage=USAGE)]
    async with start(**settings(fake_llm)) as client:
        await chat(client, "twin-a")
    [span] = [s for s in exporter.get_finished_spans() if s.name == "chat test/model"]
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openrouter"
    assert attributes["gen_ai.request.model"] == "test/model"
    assert attributes["gen_ai.response.model"] == "test/model-2026"
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 500
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["phoenix.llm.cost_usd"] == pytest.approx(0.006)
    assert attributes["phoenix.twin_id"] == "twin-a"


async def test_prices_are_validated_at_startup(make_settings: Any) -> None:
    with pytest.raises(ValueError, match=r"input_per_million|inputPerMillion"):
        make_settings(llm_prices={"m": {"inputPerMillion": -1, "outputPerMillion": 1}})
