"""tools.ToolExecutorService under random and boundary input, with real bubblewrap.

Every field of ExecutionRequest is drawn from edge cases and arbitrary values;
request-level rules (phoenix_tools.requests) must refuse with INVALID_ARGUMENT
naming the field; everything else is the policy's and the tool's to answer with
a response, INVALID_ARGUMENT for malformed tool arguments, or PERMISSION_DENIED
for a path outside the workspace. What a program prints and what file_write
writes must arrive unchanged. The policy (conftest.TOOLS_POLICY) lets the
fuzzing twin run only harmless programs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from hypothesis import example, given
from hypothesis import strategies as st

from phoenix_common.stubs import tools_pb2, tools_pb2_grpc
from phoenix_tools import requests as rules
from tests.fuzz import strategies as fz
from tests.fuzz.conftest import Service
from tests.fuzz.edge import INVALID, OK, call, judge, raw_call

pytestmark = pytest.mark.fuzz

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
TWIN = "twin-fuzz"
SANDBOX_OUTPUT_LINES = 200  # runner.MAX_LINES

twins = st.sampled_from([TWIN, TWIN, "twin-readonly", "unknown-twin", "Twin_9"])
commands = st.sampled_from(
    ["command_exec", "file_write", "vector_query", "echo", "printf", "cat", "wc", "true",
     "rm", "sh", "python3", "/usr/bin/echo", "no-such-program", "reboot"]
)  # fmt: skip
args = st.lists(fz.text(max_size=40), max_size=4)
ids = st.one_of(st.just(""), st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True))
metadata = st.dictionaries(fz.text(max_size=12), fz.text(max_size=40), max_size=4)

odd_twins = st.one_of(
    st.sampled_from(["", "-twin", "_twin", "x" * 63, "x" * 64, "twin.fuzz", "twin/fuzz"]),
    fz.odd_text(),
)
odd_commands = st.one_of(fz.odd_text(rules.MAX_COMMAND_BYTES), st.sampled_from(["", "  "]))
odd_args = st.one_of(
    st.lists(fz.odd_text(), max_size=8),
    st.builds(lambda n: ["a"] * n, st.sampled_from([rules.MAX_ARGS, rules.MAX_ARGS + 1])),
    st.builds(lambda s: [s], fz.sized(rules.MAX_ARGV_BYTES)),
)
odd_ids = fz.odd_text(rules.MAX_ID_BYTES)
odd_metadata = st.one_of(
    fz.odd_map(fz.odd_text(), fz.odd_text(), max_size=8),
    st.builds(lambda v: {"k": v}, fz.sized(rules.MAX_METADATA_BYTES)),
)

executions = fz.requests(
    tools_pb2.ExecutionRequest,
    valid={
        "twin_id": twins,
        "command": commands,
        "args": args,
        "job_id": ids,
        "namespace": ids,
        "metadata": metadata,
    },
    odd={
        "twin_id": odd_twins,
        "command": odd_commands,
        "args": odd_args,
        "job_id": odd_ids,
        "namespace": odd_ids,
        "metadata": odd_metadata,
    },
)


@pytest.fixture(scope="module")
def stub(tools_service: Service) -> Iterator[Any]:
    stub = tools_pb2_grpc.ToolExecutorServiceStub(tools_service.channel)  # type: ignore[no-untyped-call]
    yield stub
    health = call(tools_service, "tools.HealthCheck", stub.HealthCheck, empty_pb2.Empty())
    assert health.reply.status == "healthy", health
    hello = run(tools_service, stub, "printf", "%s\n", "still answering")
    assert list(hello.stdout_logs) == ["still answering"]


def run(service: Service, stub: Any, command: str, *argv: str, twin: str = TWIN) -> Any:
    request = tools_pb2.ExecutionRequest(twin_id=twin, command=command, args=argv)
    answer = call(service, "tools.RequestExecution", stub.RequestExecution, request)
    judge("tools.RequestExecution", answer, set())
    return answer.reply


# -- the request-level contract ------------------------------------------------------------


def request_problems(request: tools_pb2.ExecutionRequest) -> set[str]:
    """The fields phoenix_tools.requests must refuse, by the limits it documents."""
    bad: set[str] = set()
    if not rules.TWIN_ID.match(request.twin_id):
        bad.add("twin_id")
    command = request.command
    if not command.strip() or "\0" in command or len(command.encode()) > rules.MAX_COMMAND_BYTES:
        bad.add("command")
    argv = list(request.args)
    if len(argv) > rules.MAX_ARGS or any("\0" in a for a in argv):
        bad.add("args")
    elif command != "file_write":  # file_write's content has a limit of its own
        total = len(command.encode()) + sum(len(a.encode()) + 1 for a in argv)
        if total > rules.MAX_ARGV_BYTES:
            bad |= {"command", "args"}
    for name in ("job_id", "namespace"):
        value = getattr(request, name)
        if "\0" in value or len(value.encode()) > rules.MAX_ID_BYTES:
            bad.add(name)
    meta = dict(request.metadata)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > rules.MAX_METADATA_BYTES or any("\0" in k + v for k, v in meta.items()):
        bad.add("metadata")
    return bad


@given(request=executions)
def test_request_execution_refuses_bad_fields_and_answers_the_rest(
    tools_service: Service, stub: Any, request: tools_pb2.ExecutionRequest
) -> None:
    answer = call(tools_service, "tools.RequestExecution", stub.RequestExecution, request)
    invalid = request_problems(request)
    if invalid:
        judge("tools.RequestExecution", answer, invalid)
        return
    # Past validation: the policy's verdict, the tool's own argument rules, the sandbox.
    judge("tools.RequestExecution", answer, set(), valid_codes=(OK, INVALID, PERMISSION_DENIED))
    if answer.code != OK:
        return
    reply = answer.reply
    assert re.fullmatch(r"[0-9a-f]{32}", reply.execution_id), reply.execution_id
    assert reply.success == (reply.exit_code == 0), reply
    assert reply.message
    if request.twin_id not in (TWIN, "twin-readonly"):
        assert not reply.success
        assert list(reply.stderr_logs) == [f"Policy violation: {reply.message}"]


# -- nothing lost on the way: program arguments, output and files -------------------------

# Text a program can print as one line: no line feed, no NUL (refused in args).
one_line = st.one_of(
    st.sampled_from([s for s in fz.ODD_STRINGS if "\n" not in s and "\0" not in s]),
    fz.text(max_size=200).filter(lambda s: "\n" not in s and "\0" not in s),
)


@given(word=one_line)
@example(word="\x85next-line")  # was split in two: str.splitlines() (fixed in runner.py)
@example(word="a\u2028b\x0cc\rd")
def test_a_program_prints_its_argument_unchanged(
    tools_service: Service, stub: Any, word: str
) -> None:
    direct = run(tools_service, stub, "printf", "%s\n", word)
    assert direct.success, direct
    assert list(direct.stdout_logs) == [word.removesuffix("\r")]


@given(word=one_line)
@example(word="\x85next-line")
def test_a_shell_command_prints_its_quoted_argument_unchanged(
    tools_service: Service, stub: Any, word: str
) -> None:
    command = f"printf '%s\\n' {shlex.quote(word)}"
    answer = call(
        tools_service,
        "tools.RequestExecution",
        stub.RequestExecution,
        tools_pb2.ExecutionRequest(twin_id=TWIN, command="command_exec", args=[command]),
    )
    # The shell parser may refuse a command it cannot read; it must say so, not crash.
    judge("tools.RequestExecution", answer, set(), valid_codes=(OK, INVALID))
    if answer.code == OK:
        assert answer.reply.success, answer.reply
        assert list(answer.reply.stdout_logs) == [word.removesuffix("\r")]


paths = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}){0,2}",
                      fullmatch=True)  # fmt: skip
contents = st.one_of(fz.text(max_size=2000).filter(lambda s: "\0" not in s), fz.odd_text())


@given(path=paths, content=contents)
def test_file_write_writes_exactly_the_content(
    tools_service: Service, stub: Any, fuzz_dir: Path, path: str, content: str
) -> None:
    request = tools_pb2.ExecutionRequest(twin_id=TWIN, command="file_write", args=[path, content])
    answer = call(tools_service, "tools.RequestExecution", stub.RequestExecution, request)
    invalid = {"args"} if "\0" in content else set()
    judge("tools.RequestExecution", answer, invalid, valid_codes=(OK, INVALID, PERMISSION_DENIED))
    if answer.code != OK:
        return
    assert answer.reply.success, answer.reply
    written = fuzz_dir / "sandbox" / TWIN / "workspace" / path
    assert written.read_bytes() == content.encode()


@given(
    query=st.one_of(fz.odd_text(8192), fz.text(max_size=100)),
    namespace=st.one_of(st.just(""), fz.odd_text()),
    top_k=st.one_of(st.just(""), st.sampled_from(["0", "1", "100", "101", "-1", "1e3", "x"])),
)
def test_vector_query_reaches_memory_or_says_why_not(
    tools_service: Service, stub: Any, query: str, namespace: str, top_k: str
) -> None:
    argv = [query, namespace, top_k] if top_k else [query, namespace] if namespace else [query]
    request = tools_pb2.ExecutionRequest(twin_id=TWIN, command="vector_query", args=argv)
    answer = call(tools_service, "tools.RequestExecution", stub.RequestExecution, request)
    invalid = request_problems(request)
    if invalid:
        judge("tools.RequestExecution", answer, invalid)
        return
    judge("tools.RequestExecution", answer, set(), valid_codes=(OK, INVALID))
    if answer.code == OK:
        assert answer.reply.success
        assert len(answer.reply.stdout_logs) <= SANDBOX_OUTPUT_LINES


# -- any bytes at all ----------------------------------------------------------------------

REQUESTS: dict[str, type[Any]] = {
    "RequestExecution": tools_pb2.ExecutionRequest,
    "HealthCheck": empty_pb2.Empty,
}


@given(method=st.sampled_from(sorted(REQUESTS)), raw=fz.raw_messages())
@example(method="RequestExecution", raw=b"\x00")  # was UNKNOWN with the decoder's text
def test_any_bytes_get_a_clear_status(tools_service: Service, method: str, raw: bytes) -> None:
    raw_call(
        tools_service,
        f"/tools.ToolExecutorService/{method}",
        REQUESTS[method],
        raw,
        answers=(OK, INVALID, PERMISSION_DENIED),
    )
