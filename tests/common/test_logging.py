"""Every process logs one JSON object per line with the context passed in extra=."""

from __future__ import annotations

import json
import logging

import pytest

from phoenix_common.logging import configure
from phoenix_common.settings import CommonSettings


def test_log_lines_are_json_with_extra_fields(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    configure(CommonSettings(), "tools")
    logging.getLogger("phoenix_tools.audit").info(
        "tool executed", extra={"twin": "twin-aegis", "exit_code": 0}
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["message"] == "tool executed"
    assert entry["level"] == "info"
    assert entry["component"] == "tools"
    assert entry["twin"] == "twin-aegis"
    assert entry["exit_code"] == 0


def test_the_original_upper_case_log_level_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    assert CommonSettings().log_level == "warning"


def test_an_unknown_log_level_is_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match=r"LOG_LEVEL"):
        CommonSettings()
