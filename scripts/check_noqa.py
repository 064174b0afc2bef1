"""Every ``# noqa`` says why: ``# noqa: S603 - our own interpreter and modules``.

ruff reports a blanket ``# noqa`` (PGH004) and an unused one (RUF100) but not
one without a reason, and a suppression nobody can judge is a finding nobody
reviewed. This check reads the comments of every Python file in the tree with
the tokenizer (so a "noqa" inside a string is not one) and fails on any
``# noqa: CODES`` not followed by `` - <reason>`` (or ``  (<reason>)``, the form some
modules used before this check). Generated stubs are skipped.

    python -m scripts.check_noqa [PATH ...]   # default: the whole repository
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = ("images/common/phoenix_common/stubs/",)
# "noqa: A1, B2 - reason" or "noqa: A1  (reason)": codes, then at least one word of reason.
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$", re.IGNORECASE)
WITH_REASON = re.compile(r"^:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+(-\s+\S|\(\s*[^)\s])")


def python_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored *.py files, as git sees the work tree."""
    git = shutil.which("git")
    if git is None:
        raise SystemExit("check_noqa needs git to list the repository's files")
    listed = subprocess.run(  # noqa: S603 - a fixed argv
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    paths = (p for p in listed.split("\0") if p and not p.startswith(GENERATED))
    return [REPO / p for p in sorted(set(paths)) if (REPO / p).is_file()]


def unexplained(source: str) -> Iterator[tuple[int, str]]:
    """(line, comment) of each noqa comment in ``source`` that gives no reason."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = NOQA.search(token.string)
        if match and not WITH_REASON.match(match.group("rest")):
            yield token.start[0], token.string


def main(argv: Iterable[str]) -> int:
    paths = [Path(a) for a in argv] or python_files()
    problems = [
        f"{path.relative_to(REPO) if path.is_absolute() else path}:{line}: {comment}"
        for path in paths
        for line, comment in unexplained(path.read_text(encoding="utf-8"))
    ]
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"{len(problems)} noqa comment(s) without a reason; write "
            "`# noqa: CODE - why this line is safe` (see pyproject.toml, [tool.ruff.lint])",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
