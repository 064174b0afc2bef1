"""One logging setup for every process: structured JSON lines on stderr.

Modules only call ``logging.getLogger(__name__)`` and pass context in
``extra={...}``; this module turns it into JSON fields. Values that look like
secrets are never formatted: settings hold them as ``SecretStr``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Protocol


class LogSettings(Protocol):
    """What ``configure`` reads (a CommonSettings, or the telemetry producer's plain settings)."""

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str: ...


# Attributes every LogRecord has; anything else came from ``extra=`` and is a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and extra fields."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self._component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self._component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(settings: LogSettings, component: str) -> None:
    """Install the formatter and level on the root logger; call once, at process start."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(component))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)-7s {component} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Libraries that log every request at INFO would drown the components' own lines.
    for noisy in ("httpx", "httpcore", "urllib3", "grpc._cython"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
