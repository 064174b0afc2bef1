"""The LLM planner: any OpenAI-compatible chat-completions API over httpx.

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
from typing import Any

import httpx
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from phoenix_orchestrator.actions import action_json_schema, parse_action
from phoenix_orchestrator.planning import Action, LLMPlanningError, prompt
from phoenix_orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)

_FORMAT_HINTS = ("response_format", "json_schema", "structured", "schema")


class _Transient(LLMPlanningError):
    """A failure worth retrying (timeout, connection error, 429, 5xx)."""


class _FormatRejected(Exception):
    """The endpoint refused ``response_format: json_schema``."""


class LLMPlanner:
    """Plans through a chat-completions endpoint; one instance per process."""

    def __init__(self, client: httpx.AsyncClient, settings: OrchestratorSettings) -> None:
        self._client = client
        self._settings = settings
        self._template = prompt.load_template(settings.system_prompt_file)
        self._schema = action_json_schema()
        self._use_schema = settings.llm_response_format != "json_object"

    @property
    def response_format(self) -> str:
        """The format the next request asks for: ``json_schema`` or ``json_object``."""
        return "json_schema" if self._use_schema else "json_object"

    async def decide(self, message: str, twin_id: str) -> tuple[Action, str]:
        """The action for ``message`` and the raw JSON text it was parsed from."""
        try:
            content = await self._complete_with_retries(message, twin_id)
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
            content = await self._complete_with_retries(message, twin_id)
        return _parse(content), content

    async def _complete_with_retries(self, message: str, twin_id: str) -> str:
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
                    return await self._complete(message, twin_id)
        except _Transient as err:
            raise LLMPlanningError(err.reason, f"{err} (after {attempts} attempt(s))") from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _complete(self, message: str, twin_id: str) -> str:
        settings = self._settings
        body = {
            "model": settings.openrouter_model,
            "messages": [
                {"role": "system", "content": prompt.render(self._template, twin_id)},
                {"role": "user", "content": message},
            ],
            "response_format": self._response_format(),
            "temperature": settings.llm_temperature,
        }
        key = settings.openrouter_api_key.get_secret_value() if settings.openrouter_api_key else ""
        headers = {"Authorization": f"Bearer {key}", "X-Title": settings.llm_app_title}
        if settings.llm_http_referer:
            headers["HTTP-Referer"] = settings.llm_http_referer
        try:
            reply = await self._client.post(settings.openrouter_url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise _Transient(
                "timeout", f"the LLM did not answer within {settings.llm_timeout_seconds:g}s"
            ) from None
        except httpx.TransportError as err:
            raise _Transient(
                "unavailable", f"cannot reach the LLM endpoint ({type(err).__name__})"
            ) from None
        status = reply.status_code
        if status == 429 or status >= 500:
            raise _Transient("unavailable", f"the LLM endpoint answered HTTP {status}")
        if status >= 400:
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
        return _content(reply)

    def _response_format(self) -> dict[str, Any]:
        if self._use_schema:
            return {
                "type": "json_schema",
                "json_schema": {"name": "llm_action", "strict": False, "schema": self._schema},
            }
        return {"type": "json_object"}


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
