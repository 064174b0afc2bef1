"""scripts/check_noqa.py: a suppression must say why; strings that mention noqa are not one."""

from __future__ import annotations

from scripts.check_noqa import unexplained

SOURCE = """
import subprocess  # noqa: F401 - re-exported for the tests
run = subprocess.run  # noqa: S603
both = 1  # noqa: E501, S105 -
blanket = 2  # noqa
text = "# noqa: S105"
many = 3  # noqa: E501,S105 - a long fixture line
old = 4  # noqa: PLC0415  (imported only for this backend)
empty = 5  # noqa: PLC0415  ()
"""


def test_only_noqa_comments_without_a_reason_are_reported() -> None:
    assert [line for line, _ in unexplained(SOURCE)] == [3, 4, 5, 9]
