"""The LLM planner: any OpenAI-compatible chat-completions API over httpx.

Each call sends the system prompt, the user's message and, in the agent loop,
every earlier step's decision and what it observed; with ``LLM_STREAM`` (the
default) it asks for a streamed reply and passes an answer's text on as it
arrives (``stream``). Usage is counted per twin and model (``usage``).

It asks for structured output with ``response_format: json_schema`` built
from the ``LLMAction`` model. When the provider or model rejects that (HTTP
400/422 naming the response format), it switches to ``json_object`` for the
rest of the process. Timeouts, transport errors, 429 and 5xx are retried a
bounded number of times; anything else fails at once. The reply is accepted
only if it validates as a whole ``LLMAction``.

Neither the API key nor the prompt or message text is ever logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from opentelemetry import trace
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from phoenix_orchestrator.actions import action_json_schema, parse_action
from phoenix_orchestrator.agent.turns import Step
from phoenix_orchestrator.planning import Action, FailureReason, LLMPlanningError, prompt, stream
from phoenix_orchestrator.planning.stream import AnswerStream
from phoenix_orchestrator.planning.usage import Usage, UsageMeter
from phoenix_orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("phoenix_orchestrator.llm")

Sink = Callable[[str], Awaitable[None]]

_FORMAT_HINTS = ("response_format", "json_schema", "structured", "schema")


class _Transient(LLMPlanningError):
    """A failure worth retrying (timeout, connection error, 429, 5xx)."""


class _FormatRejected(Exception):
    """The endpoint refused ``response_format: json_schema``."""


class LLMPlanner:
    """Plans through a chat-completions endpoint; one instance per process."""

    def __init__(
        self, client: httpx.AsyncClient, settings: OrchestratorSettings, meter: UsageMeter
    ) -> None:
        self._client = client
        self._settings = settings
        self._meter = meter
        self._template = prompt.load_template(settings.system_prompt_file)
        self._schema = action_json_schema()
        self._use_schema = settings.llm_response_format != "json_object"

    @property
    def response_format(self) -> str:
        """The format the next request asks for: ``json_schema`` or ``json_object``."""
        return "json_schema" if self._use_schema else "json_object"

    async def decide(
        self,
        message: str,
        twin_id: str,
        steps: Sequence[Step] = (),
        sink: Sink | None = None,
    ) -> tuple[Action, str]:
        """The next action for ``message`` after ``steps``, and the raw JSON text it came from.

        With ``sink``, the text of an answer is passed to it as it streams in.
        """
        messages = prompt.conversation(self._template, twin_id, message, steps)
        try:
            content = await self._complete_with_retries(messages, twin_id, sink)
        except _FormatRejected:
            if self._settings.llm_response_format == "json_schema":
                raise LLMPlanningError(
                    "http_error",
                    "the LLM endpoint rejected response_format json_schema "
                    "(set LLM_RESPONSE_FORMAT=auto or json_object)",
                ) from None
            logger.warning(
                "llm endpoint rejected json_schema; using json_object from now on",
                extra={"model": self._settings.openrouter_model},
            )
            self._use_schema = False
            content = await self._complete_with_retries(messages, twin_id, sink)
        return _parse(content), content

    async def _complete_with_retries(
        self, messages: list[dict[str, str]], twin_id: str, sink: Sink | None
    ) -> str:
        attempts = self._settings.llm_max_attempts
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self._settings.llm_retry_backoff_seconds, max=8),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._complete(messages, twin_id, sink)
        except _Transient as err:
            raise LLMPlanningError(err.reason, f"{err} (after {attempts} attempt(s))") from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _complete(
        self, messages: list[dict[str, str]], twin_id: str, sink: Sink | None
    ) -> str:
        settings = self._settings
        model = settings.openrouter_model
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "response_format": self._response_format(),
            "temperature": settings.llm_temperature,
        }
        if settings.llm_stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        key = settings.openrouter_api_key.get_secret_value() if settings.openrouter_api_key else ""
        headers = {"Authorization": f"Bearer {key}", "X-Title": settings.llm_app_title}
        if settings.llm_http_referer:
            headers["HTTP-Referer"] = settings.llm_http_referer
        with tracer.start_as_current_span(
            f"chat {model}",
            kind=trace.SpanKind.CLIENT,
            attributes=self._meter.span_attributes(model, settings.llm_temperature),
        ) as span:
            answer = AnswerStream()
            try:
                async with self._client.stream(
                    "POST", settings.openrouter_url, json=body, headers=headers
                ) as reply:
                    await self._check_status(reply)
                    if "text/event-stream" in reply.headers.get("content-type", ""):
                        usage = await _read_stream(reply, answer, sink)
                        content = answer.text
                    else:
                        await reply.aread()
                        content = _content(reply)
                        usage = Usage.from_payload(_json_or_none(reply))
            except httpx.TimeoutException:
                raise self._transient_unless_streamed(
                    answer,
                    "timeout",
                    f"the LLM did not answer within {settings.llm_timeout_seconds:g}s",
                ) from None
            except httpx.TransportError as err:
                raise self._transient_unless_streamed(
                    answer, "unavailable", f"cannot reach the LLM endpoint ({type(err).__name__})"
                ) from None
            if usage is not None:
                self._meter.record(twin_id, model, usage, span)
        if not content.strip():
            raise LLMPlanningError("invalid_output", "the LLM returned no message content")
        return content

    @staticmethod
    def _transient_unless_streamed(
        answer: AnswerStream, reason: FailureReason, message: str
    ) -> LLMPlanningError:
        """A failure after answer text reached the user is not retried (it would repeat it)."""
        if answer.emitted:
            return LLMPlanningError(reason, f"{message}, part-way through a streamed answer")
        return _Transient(reason, message)

    async def _check_status(self, reply: httpx.Response) -> None:
        status = reply.status_code
        if status < 400:
            return
        await reply.aread()
        if status == 429 or status >= 500:
            raise _Transient("unavailable", f"the LLM endpoint answered HTTP {status}")
        detail = _error_detail(reply)
        if (
            status in (400, 422)
            and self._use_schema
            and any(hint in detail.lower() for hint in _FORMAT_HINTS)
        ):
            raise _FormatRejected
        raise LLMPlanningError(
            "http_error", f"the LLM endpoint answered HTTP {status}: {detail[:200]}"
        )

    def _response_format(self) -> dict[str, Any]:
        if self._use_schema:
            return {
                "type": "json_schema",
                "json_schema": {"name": "llm_action", "strict": False, "schema": self._schema},
            }
        return {"type": "json_object"}


async def _read_stream(
    reply: httpx.Response, answer: AnswerStream, sink: Sink | None
) -> Usage | None:
    """Accumulate a streamed completion into ``answer``; the usage its last chunk reported."""
    usage: Usage | None = None
    finish: str | None = None
    async for chunk in stream.events(reply.aiter_lines()):
        delta, reason = stream.delta_of(chunk)
        finish = reason or finish
        if delta:
            new = answer.feed(delta)
            if new and sink is not None:
                await sink(new)
        usage = Usage.from_payload(chunk) or usage
    if usage is not None and finish is not None:
        usage = Usage(usage.input_tokens, usage.output_tokens, usage.response_model, finish)
    return usage


def _json_or_none(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


def _error_detail(reply: httpx.Response) -> str:
    try:
        data = reply.json()
    except ValueError:
        return reply.text
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return json.dumps(data)


def _content(reply: httpx.Response) -> str:
    try:
        content = reply.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMPlanningError(
            "invalid_output", "the LLM endpoint's reply is not a chat completion"
        ) from None
    if not isinstance(content, str) or not content.strip():
        raise LLMPlanningError("invalid_output", "the LLM returned no message content")
    return content


def _strip_fence(content: str) -> str:
    text = content.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        if text.startswith("json"):
            text = text[4:]
    return text.strip()


def _parse(content: str) -> Action:
    try:
        return parse_action(_strip_fence(content))
    except ValidationError as err:
        first = err.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "<root>"
        raise LLMPlanningError(
            "invalid_output",
            f"the LLM's decision is not a valid LLMAction ({err.error_count()} error(s); "
            f"first at {where}: {first['msg']})",
        ) from None
