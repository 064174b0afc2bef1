"""The warm launcher's argv line: whatever the argv, dash's ``eval`` rebuilds exactly it.

The service writes a command's argv to a waiting sandbox as one line of shell words
(``warm.encode_argv``) and the launcher (``warm.LAUNCHER``, run by the real ``/bin/sh``)
``eval``s it into ``exec``. A word that came out different, split, joined or expanded would
run another command than the one approved, so this drives the real launcher with arbitrary
arguments (quotes, ``$``, backticks, backslashes, globs, newlines, non-ASCII) and compares
the argv the exec'd program received, byte for byte.
"""

from __future__ import annotations

import os
import socket
import subprocess

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from phoenix_tools import warm
from phoenix_tools.sandbox import Limits

LIMITS = Limits(
    as_bytes=1 << 30,
    cpu_seconds=10,
    fsize_bytes=1 << 20,
    nofile=256,
    nproc=1024,
    tmpfs_bytes=1 << 20,
)
PRINTF = "/usr/bin/printf"
# Any text but NUL (requests.py refuses it before policy), built from pieces so the shell's
# specials and newlines are in most examples rather than left to chance.
SPECIALS = [*"'\"$`\\*?[]{}~;&|<>()!# \t\n\r=%", "$n", "'\"'\"'", "\n\n", "$(id)", "${n}"]
PIECE = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=6),
)
ARG = st.lists(PIECE, max_size=8).map("".join)


def run_launcher(argv: list[str]) -> tuple[bytes, bytes, int]:
    """Start the launcher as a sandbox would, hand it ``argv`` and return what it printed."""
    ours, theirs = socket.socketpair()
    with ours:
        process = subprocess.Popen(
            warm.launcher_argv("/bin/sh", LIMITS),
            stdin=theirs.fileno(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        theirs.close()
        assert ours.recv(1) == warm.READY
        ours.sendall(warm.encode_argv(argv))
        assert ours.recv(1) == warm.DISPATCHED
        out, err = process.communicate(timeout=30)
    return out, err, process.returncode


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(args=st.lists(ARG, max_size=6))
@example(args=["a\nb", "", "\n", "'", "it's", '"$n"', "$n"])
def test_the_launcher_execs_exactly_the_argv_it_was_sent(args: list[str]) -> None:
    # printf's format repeats for each argument: every argument, NUL-terminated, as received.
    out, err, code = run_launcher([PRINTF, "%s\\0", *args])
    assert code == 0, err
    expected = b"".join(os.fsencode(arg) + b"\0" for arg in args) if args else b"\0"
    assert out == expected


def test_a_word_that_looks_like_shell_syntax_is_not_run() -> None:
    out, err, code = run_launcher([PRINTF, "%s\\n", "$(echo pwned)", "`id`", "a;b", "x'y"])
    assert code == 0, err
    assert out == b"$(echo pwned)\n`id`\na;b\nx'y\n"


def test_a_program_that_cannot_be_run_is_reported_as_the_shell_says() -> None:
    _out, err, code = run_launcher(["/nonexistent/program", "arg"])
    assert code == 127
    failure = warm.exec_failure(err)
    assert failure is not None, err
    assert failure[0] == "/nonexistent/program"
