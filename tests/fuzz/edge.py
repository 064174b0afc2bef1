"""Calling a fuzzed RPC and judging the answer: the same rules for memory and tools.

Every call has a deadline; DEADLINE_EXCEEDED is reported as a hang, INTERNAL and
UNKNOWN as a crash of the handler, and a dead process as a crash of the service.
A request the test's model of the contract calls invalid must get
INVALID_ARGUMENT naming one of the bad fields; a valid one must not.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from tests.fuzz.conftest import CALL_TIMEOUT_S, Service, tally

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NEVER = {
    grpc.StatusCode.INTERNAL: "the handler crashed (INTERNAL)",
    grpc.StatusCode.UNKNOWN: "the handler raised (UNKNOWN)",
    grpc.StatusCode.DEADLINE_EXCEEDED: f"no answer within {CALL_TIMEOUT_S:.0f}s (a hang)",
}
MAX_DETAILS = 600  # a clear message is short; a traceback or an echoed 32 KiB field is not


class Answer:
    def __init__(self, code: grpc.StatusCode, reply: Any, details: str) -> None:
        self.code, self.reply, self.details = code, reply, details

    def __repr__(self) -> str:
        return f"{self.code.name}: {self.details[:300]!r}"


def call(
    service: Service,
    rpc: str,
    method: Callable[..., Any],
    request: Any,
) -> Answer:
    """One call, tallied; fails on a crash, a hang or a dead service."""
    try:
        reply = method(request, timeout=CALL_TIMEOUT_S)
        answer = Answer(OK, reply, "")
    except grpc.RpcError as err:
        answer = Answer(err.code(), None, err.details() or "")
    tally(rpc, answer.code.name)
    service.assert_alive()
    if answer.code in NEVER:
        raise AssertionError(f"{rpc}: {NEVER[answer.code]}: {answer!r}")
    return answer


def judge(
    rpc: str,
    answer: Answer,
    invalid: Collection[str],
    valid_codes: Collection[grpc.StatusCode] = (OK,),
) -> None:
    """The status a request deserves under the contract, ``invalid`` being its bad fields."""
    if invalid:
        assert answer.code == INVALID, (
            f"{rpc}: bad {sorted(invalid)} got {answer!r} instead of INVALID_ARGUMENT"
        )
        assert any(name in answer.details for name in invalid), (
            f"{rpc}: INVALID_ARGUMENT does not name any of {sorted(invalid)}: {answer!r}"
        )
    else:
        assert answer.code in valid_codes, (
            f"{rpc}: a valid request got {answer!r}, expected one of "
            f"{sorted(c.name for c in valid_codes)}"
        )
    if answer.code != OK:
        assert answer.details.strip(), f"{rpc}: {answer.code.name} without a message"
        assert len(answer.details) <= MAX_DETAILS, f"{rpc}: {len(answer.details)}-char message"


def raw_call(
    service: Service,
    method: str,
    message: type[Any],
    raw: bytes,
    answers: Collection[grpc.StatusCode],
) -> Answer:
    """Send ``raw`` as the request body of ``method``, whatever it is.

    Bytes that are no ``message`` (a corrupt wire format, invalid UTF-8 in a
    string) must be refused with INVALID_ARGUMENT; bytes that happen to decode
    are an ordinary request and get one of ``answers``.
    """
    package, name = method.split("/")[1].split(".", maxsplit=1)[0], method.rsplit("/", 1)[1]
    label = f"{package}.{name} (raw bytes)"
    answer = call(service, label, service.channel.unary_unary(method), raw)
    try:
        message.FromString(raw)
    except DecodeError:
        judge(label, answer, {"not a valid message"})
        return answer
    assert answer.code in answers, f"{label}: {answer!r}"
    return answer
