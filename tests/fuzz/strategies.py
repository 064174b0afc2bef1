"""Hypothesis strategies for hostile gRPC field values: boundaries first, then anything.

Every string strategy mixes hand-picked edge cases (empty, blank, NUL bytes,
bidi overrides, combining marks, astral characters, path and dot tricks) with
sizes just under, at and over a byte limit, and arbitrary UTF-8 text (proto3
strings must be valid UTF-8; invalid bytes are the raw-message tests' job).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

ODD_STRINGS = (
    "",
    " ",
    "\t\n\r",
    "\x00",
    "a\x00b",
    "\x00" * 64,
    "\u202eevil\u202c",  # right-to-left override
    "e\u0301" * 8,  # combining acute accents
    "\ufeffbom",
    "\U0010ffff",
    "🦀🧬👩‍👩‍👧",
    "Ελληνικά 中文 العربية",
    "..",
    ".",
    "../../etc/passwd",
    "/",
    "a/b",
    "a.b",
    "a\\b",
    "*",
    "%s%n%x",
    "'; DROP TABLE x; --",
    '{"$ne": null}',
    "default ",
    " default",
    "DEFAULT",
    "-leading-dash",
    "_underscore",
    "twin-aegis",
    "null",
    "None",
    "0",
    "-1",
    "NaN",
    "\u0085next-line",
    "line\nbreak",
)

# Characters of 1, 2, 3 and 4 UTF-8 bytes, and NUL, to build strings of a given byte size.
WIDTHS = ("x", "é", "€", "🦀", "\x00")


def sized(limit_bytes: int) -> st.SearchStrategy[str]:
    """Strings just under, at and just over ``limit_bytes`` of UTF-8, and far over it."""

    def build(char: str, delta: int) -> str:
        width = len(char.encode())
        return char * max(0, limit_bytes // width + delta)

    return st.builds(build, st.sampled_from(WIDTHS), st.sampled_from((-1, 0, 1, 8)))


def text(max_size: int = 300) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def odd_text(*limits: int) -> st.SearchStrategy[str]:
    """Edge cases, arbitrary text, and strings around each of ``limits`` (bytes)."""
    options = [st.sampled_from(ODD_STRINGS), text()]
    options += [sized(limit) for limit in limits]
    return st.one_of(*options)


def int32() -> st.SearchStrategy[int]:
    boundaries = (INT32_MIN, INT32_MIN + 1, -1, 0, 1, 2, 99, 100, 101, INT32_MAX - 1, INT32_MAX)
    return st.one_of(st.sampled_from(boundaries), st.integers(INT32_MIN, INT32_MAX))


def odd_map(
    keys: st.SearchStrategy[str], values: st.SearchStrategy[str], max_size: int = 40
) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(keys, values, max_size=max_size)


def requests(
    message: Callable[..., T],
    valid: dict[str, st.SearchStrategy[Any]],
    odd: dict[str, st.SearchStrategy[Any]],
) -> st.SearchStrategy[T]:
    """Messages with every field valid (a third of the cases) or some fields drawn from ``odd``.

    Drawing each field independently from a mix would make nearly every case carry
    some bad field, and the paths behind validation would go untested.
    """

    @st.composite
    def draw(data: st.DrawFn) -> T:
        broken = data(
            st.one_of(
                st.just(frozenset[str]()),
                st.frozensets(st.sampled_from(sorted(odd)), min_size=1),
            )
        )
        fields = {
            name: data(odd[name] if name in broken else strategy)
            for name, strategy in valid.items()
        }
        return message(**fields)

    return draw()


def raw_messages() -> st.SearchStrategy[bytes]:
    """Request bodies: arbitrary bytes, and hand-made corrupt encodings of a string field 1."""
    corrupt = (
        b"\x00",  # field number 0
        b"\x0a\x02\xff\xfe",  # field 1, length 2, invalid UTF-8
        b"\x0a\x80\x80\x80\x80\x10",  # a length past the end
        b"\x0a\x05ab",  # truncated
        b"\x0b",  # start-group wire type
        b"\xff" * 16,
    )
    return st.one_of(st.sampled_from(corrupt), st.binary(max_size=512))
