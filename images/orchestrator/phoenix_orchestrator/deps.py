"""FastAPI dependencies: what a route needs, taken from ``app.state`` (tests override them).

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency on a
worker thread, a thread hop per request for a dictionary lookup.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from phoenix_orchestrator.chat import ChatService
from phoenix_orchestrator.observability import Metrics
from phoenix_orchestrator.settings import OrchestratorSettings


async def get_settings(request: Request) -> OrchestratorSettings:
    return cast(OrchestratorSettings, request.app.state.settings)


async def get_chat_service(request: Request) -> ChatService:
    return cast(ChatService, request.app.state.chat)


async def get_metrics(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


SettingsDep = Annotated[OrchestratorSettings, Depends(get_settings)]
ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
