"""The base of every component's settings class.

Each component has exactly one settings class (pydantic-settings), built once
at startup and passed down. Fields keep the original system's variable names
through ``validation_alias`` so an existing ``.env`` works unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["json", "text"]


class CommonSettings(BaseSettings):
    """Settings every process reads: logging, tracing and the metrics port."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    log_level: LogLevel = Field(
        "info",
        validation_alias=AliasChoices("LOG_LEVEL", "PHOENIX_LOG_LEVEL"),
        description="Minimum level of log lines written to stderr.",
    )
    log_format: LogFormat = Field(
        "json",
        validation_alias="PHOENIX_LOG_FORMAT",
        description="json for machines (the default), text for a terminal.",
    )
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "PHOENIX_OTLP_ENDPOINT"),
        description="OTLP/gRPC collector for traces; unset means no exporter.",
    )
    service_name: str | None = Field(
        None,
        validation_alias="OTEL_SERVICE_NAME",
        description="Overrides the component's service.name resource attribute.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        # The original lower-cased LOG_LEVEL, so LOG_LEVEL=INFO must keep working.
        return value.lower() if isinstance(value, str) else value


def config_error_message(component: str, err: ValidationError) -> str:
    """What a process prints before exiting 2 on bad configuration.

    One line per invalid variable, naming it and the rule it broke. The value
    received is never echoed: it may be a secret (an API key in the wrong
    variable), and the user can see their own environment anyway.
    """
    lines = [f"phoenix-{component}: invalid configuration:"]
    for error in err.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
