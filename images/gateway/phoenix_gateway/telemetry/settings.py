"""The telemetry producer's settings: the original's variables, read without pydantic.

Every other process reads its settings with pydantic-settings. This one does
not, on purpose: the producer's memory budget is 32 MiB (issue 12) and loading
pydantic and pydantic-settings costs about 14 MiB of it, on top of the ~20 MiB
an asyncio process starts at. The rules are those pydantic would apply, and a
bad value exits 2 with the same kind of message (the variable and the rule,
never the value). ``.env`` in the working directory is read as by the others;
the environment wins over it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "text")


class TelemetryConfigError(ValueError):
    """One line per invalid variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def message(self) -> str:
        return "\n".join(["phoenix-telemetry: invalid configuration:", *self.problems])


@dataclass(frozen=True)
class TelemetrySettings:
    """What ``phoenix-gateway telemetry`` reads."""

    host: str = "0.0.0.0"  # noqa: S104 - a pod's sidecar, reached by the gateway
    port: int = 8183
    interval_ms: int = 2000
    keepalive_seconds: float = 10.0
    log_level: str = "info"
    log_format: str = "json"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TelemetrySettings:
        """Settings from ``environ`` (default: ``.env`` overlaid by the process environment)."""
        env = dict(_dotenv(Path(".env"))) if environ is None else {}
        env.update(os.environ if environ is None else environ)
        problems: list[str] = []

        def number(name: str, default: float, *, minimum: float, integer: bool) -> float:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                kind = "an integer" if integer else "a number"
                problems.append(f"  {name}: Input should be {kind}")
                return default
            if value < minimum:
                problems.append(f"  {name}: Input should be greater than or equal to {minimum:g}")
            return value

        def choice(names: tuple[str, ...], default: str, allowed: tuple[str, ...]) -> str:
            raw = next((env[n] for n in names if env.get(n)), default).strip().lower()
            if raw not in allowed:
                problems.append(f"  {names[0]}: Input should be {', '.join(allowed)}")
                return default
            return raw

        port = int(number("TELEMETRY_PORT", 8183, minimum=0, integer=True))
        if port > 65535:
            problems.append("  TELEMETRY_PORT: Input should be less than or equal to 65535")
        keepalive = number("TELEMETRY_KEEPALIVE_SECONDS", 10.0, minimum=0.01, integer=False)
        settings = cls(
            host=env.get("TELEMETRY_HOST") or "0.0.0.0",  # noqa: S104
            port=port,
            interval_ms=int(number("TELEMETRY_INTERVAL_MS", 2000, minimum=50, integer=True)),
            keepalive_seconds=keepalive,
            log_level=choice(("LOG_LEVEL", "PHOENIX_LOG_LEVEL"), "info", LOG_LEVELS),
            log_format=choice(("PHOENIX_LOG_FORMAT",), "json", LOG_FORMATS),
        )
        if problems:
            raise TelemetryConfigError(problems)
        return settings


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # noqa: PLC0415 - only when there is a .env

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
