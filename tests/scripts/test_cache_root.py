"""scripts.cache: one cache root for every script and test, by the shell scripts' rule."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.cache import cache_root

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("phoenix", "xdg", "expected"),
    [
        ("/srv/phx", "/srv/xdg", "/srv/phx"),
        ("", "/srv/xdg", "/srv/xdg/phoenixtwin"),
        (None, "/srv/xdg", "/srv/xdg/phoenixtwin"),
        (None, "", "{home}/.cache/phoenixtwin"),
        (None, None, "{home}/.cache/phoenixtwin"),
    ],
)
def test_the_root_follows_the_same_rule_as_the_shell_build_scripts(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    phoenix: str | None,
    xdg: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in (("PHOENIX_CACHE", phoenix), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert cache_root() == Path(expected.format(home=tmp_path))
    # The line every build script starts with, evaluated by bash in the same environment.
    line = next(
        text
        for text in (REPO / "scripts" / "build-node.sh").read_text().splitlines()
        if text.startswith("CACHE_ROOT=")
    )
    shell = subprocess.run(
        ["bash", "-c", f'{line}; printf %s "$CACHE_ROOT"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(shell.stdout) == cache_root()
