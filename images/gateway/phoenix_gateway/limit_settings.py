"""The settings of the edge limits (``limits``), apart so that ``settings`` can inherit them
without importing the middleware (which needs ``auth``, which needs ``settings``)."""

from __future__ import annotations

from pydantic import Field

from phoenix_common.settings import CommonSettings


class EdgeLimitSettings(CommonSettings):
    """The edge limits; GatewaySettings inherits them. 0 turns a limit off."""

    rate_limit_per_minute: int = Field(
        1200,
        ge=0,
        validation_alias="GATEWAY_RATE_LIMIT_PER_MINUTE",
        description="Sustained HTTP requests plus chat frames per credential per minute.",
    )
    rate_limit_burst: int = Field(
        200,
        ge=1,
        validation_alias="GATEWAY_RATE_LIMIT_BURST",
        description="How many of them may come at once after a quiet spell.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=0,
        validation_alias="GATEWAY_MAX_BODY_BYTES",
        description="Largest HTTP request body.",
    )
    ws_max_sockets_per_credential: int = Field(
        8,
        ge=0,
        validation_alias="GATEWAY_WS_MAX_SOCKETS_PER_CREDENTIAL",
        description="Open chat WebSockets one credential may hold.",
    )
