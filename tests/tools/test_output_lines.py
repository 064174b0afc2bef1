"""Captured output splits at "\\n" only: what the fuzzed edge found str.splitlines() broke."""

from __future__ import annotations

import pytest

from phoenix_tools.runner import Captured


def lines_of(data: bytes) -> list[str]:
    captured = Captured()
    captured.add(data)
    return captured.lines()[0]


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        (b"\xc2\x85next-line\n", ["\x85next-line"]),  # U+0085 is no line end to a shell
        ("a\u2028b\x0cc\rd\n".encode(), ["a\u2028b\x0cc\rd"]),
        (b"one\r\ntwo\n", ["one", "two"]),  # CRLF ends a line without its CR
        (b"no newline at the end", ["no newline at the end"]),
        (b"\n\n", ["", ""]),
        (b"", []),
    ],
)
def test_lines_end_at_line_feeds_only(printed: bytes, expected: list[str]) -> None:
    assert lines_of(printed) == expected
