"""Configuration errors name the variable and the rule, never the value."""

from __future__ import annotations

import pytest
from pydantic import Field, SecretStr, ValidationError

from phoenix_common.settings import CommonSettings, config_error_message


class _Settings(CommonSettings):
    port: int = Field(8182, ge=1, le=65535, validation_alias="EXAMPLE_PORT")
    api_key: SecretStr | None = Field(None, min_length=16, validation_alias="EXAMPLE_API_KEY")


def test_a_config_error_names_each_variable_and_never_echoes_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLE_PORT", "99999")
    monkeypatch.setenv("EXAMPLE_API_KEY", "sk-short")
    with pytest.raises(ValidationError) as caught:
        _Settings()
    message = config_error_message("example", caught.value)
    lines = message.splitlines()
    assert lines[0] == "phoenix-example: invalid configuration:"
    assert any(line.startswith("  EXAMPLE_PORT: ") and "65535" in line for line in lines)
    assert any(line.startswith("  EXAMPLE_API_KEY: ") for line in lines)
    assert "sk-short" not in message
    assert "99999" not in message
