"""Settings, request validation and the process's exit status on bad configuration."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from phoenix_common.errors import InvalidInput, PermissionDenied
from phoenix_tools import requests, runner, seccomp, workdir
from phoenix_tools.settings import ToolsSettings


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Yes", "on", "ON"])
def test_use_bwrap_accepts_every_usual_spelling_of_true(value: str) -> None:
    """Defect 3: the original treated anything but exactly 'true' as false."""
    assert ToolsSettings(TOOLS_USE_BWRAP=value).use_bwrap is True


@pytest.mark.parametrize("value", ["0", "false", "NO", "off"])
def test_use_bwrap_accepts_every_usual_spelling_of_false(value: str) -> None:
    assert ToolsSettings(TOOLS_USE_BWRAP=value).use_bwrap is False


def test_original_variable_names_and_defaults() -> None:
    settings = ToolsSettings()
    assert settings.grpc_port == 50054
    assert settings.exec_timeout_ms == 10000
    assert settings.sandbox_dir == Path("/tmp/pagi-sandbox")  # noqa: S108 - asserted default
    assert settings.memory_grpc_addr == "127.0.0.1:50052"
    assert settings.metrics_port == 9154
    assert (settings.sandbox_uid, settings.sandbox_gid) == (65534, 65534)
    assert settings.allow_unsandboxed is False


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLS_GRPC_PORT", "6000")
    monkeypatch.setenv("SAFE_MODE", "yes")
    monkeypatch.setenv("ALLOW_RESTRICTED_COMMANDS", "on")
    monkeypatch.setenv("MEMORY_GRPC_ADDR", "http://memory:50052/")
    settings = ToolsSettings()
    assert (settings.grpc_port, settings.safe_mode, settings.allow_restricted_commands) == (
        6000,
        True,
        True,
    )
    assert settings.memory_grpc_addr == "memory:50052"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"TOOLS_USE_BWRAP": "maybe"}, "TOOLS_USE_BWRAP"),
        ({"TOOLS_GRPC_PORT": "99999"}, "TOOLS_GRPC_PORT"),
        ({"TOOLS_EXEC_TIMEOUT_MS": "ten"}, "TOOLS_EXEC_TIMEOUT_MS"),
        ({"SANDBOX_DIR": "relative/dir"}, "SANDBOX_DIR"),
    ],
)
def test_bad_configuration_exits_2_with_a_clear_message(env: dict[str, str], fragment: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "phoenix_tools"],
        env={**os.environ, "TOOLS_METRICS_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_policy_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("twins: {a: {allowed: [x], colour: red}}")
    result = subprocess.run(
        [sys.executable, "-m", "phoenix_tools"],
        env={
            **os.environ,
            "TOOLS_METRICS_PORT": "0",
            "TOOLS_GRPC_PORT": "0",
            "TOOLS_POLICY_FILE": str(bad),
            "SANDBOX_DIR": str(tmp_path / "sb"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid policy file" in result.stderr
    assert str(bad) in result.stderr
    assert "colour" in result.stderr


# --- request validation (A6) ----------------------------------------------------------------


def ok(**kw: object) -> requests.ToolRequest:
    values: dict[str, object] = {"twin_id": "twin-aegis", "command": "ls", "args": []}
    values.update(kw)
    return requests.validate(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"command": ""}, "command is required"),
        ({"command": "   "}, "command is required"),
        ({"twin_id": ""}, "twin_id is required"),
        ({"twin_id": "../etc"}, "twin_id '../etc' is invalid"),
        ({"twin_id": "a/b"}, "is invalid"),
        ({"twin_id": "x" * 64}, "is invalid"),
        ({"command": "ls\x00rm"}, "command contains a NUL byte"),
        ({"args": ["a", "b\x00c"]}, "args[1] contains a NUL byte"),
        ({"args": ["x" * (130 * 1024)]}, "at most 131072"),
        ({"args": ["x"] * 2000}, "at most 1024"),
        ({"metadata": {"k": "v" * 20000}}, "metadata totals"),
        ({"job_id": "j\x00"}, "job_id contains a NUL byte"),
        ({"command": "file_write", "args": ["f", "x" * (2 * 1024 * 1024)]}, "file_write content"),
    ],
)
def test_malformed_requests_are_invalid_input_with_the_field_named(
    fields: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        ok(**fields)
    assert fragment in str(err.value)


def test_file_write_content_may_exceed_the_argv_cap() -> None:
    request = ok(command="file_write", args=["f", "x" * (512 * 1024)])
    assert request.args[0] == "f"
    keyed = ok(command="file_write", args=["content=" + "x" * (512 * 1024), "path=f"])
    assert keyed.args[1] == "path=f"


# --- file_write paths (F8) ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "./x", "a/./b"])
def test_file_write_paths_that_leave_the_workspace_are_permission_denied(path: str) -> None:
    with pytest.raises(PermissionDenied):
        workdir.validate_relative_path(path)


@pytest.mark.parametrize("path", ["", "a b", "x\u00a0", "a\\b", "a/" * 20 + "x", "k=v"])
def test_file_write_paths_with_odd_characters_are_invalid(path: str) -> None:
    with pytest.raises(InvalidInput):
        workdir.validate_relative_path(path)


def test_file_write_refuses_a_symlink_anywhere_on_the_path(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "link").symlink_to(outside)
    (workspace / "file").symlink_to(outside / "target")
    with pytest.raises(PermissionDenied):
        workdir.write_file(workspace, "link/x", "data")
    with pytest.raises(PermissionDenied):
        workdir.write_file(workspace, "file", "data")
    assert list(outside.iterdir()) == []


def test_file_write_creates_directories_inside_the_workspace(tmp_path: Path) -> None:
    assert workdir.write_file(tmp_path, "a/b/c.txt", "héllo") == 6
    assert (tmp_path / "a/b/c.txt").read_text() == "héllo"


# --- small pure pieces ----------------------------------------------------------------------


def test_seccomp_filter_is_whole_bpf_instructions_for_this_host() -> None:
    program = seccomp.build_filter()
    assert len(program) % 8 == 0
    assert 40 < len(program) // 8 < 4096
    with pytest.raises(ValueError, match="no seccomp syscall table"):
        seccomp.build_filter("sparc")


def test_output_is_capped_at_200_lines_and_32_kib_per_stream() -> None:
    many_lines = runner.Captured()
    many_lines.add(b"x\n" * 500)
    lines, cut = many_lines.lines()
    assert len(lines) == 200
    assert cut
    big = runner.Captured()
    big.add(b"y" * 100_000)
    lines, cut = big.lines()
    assert sum(len(line) for line in lines) == 32 * 1024
    assert cut
    assert big.total == 100_000


def test_an_exec_dir_is_removed_while_a_dying_process_still_writes_in_it(tmp_path: Path) -> None:
    """As a sandboxed process being killed can: the removal outlasts its last file."""
    exec_dir = tmp_path / "twin" / "exec"
    (exec_dir / "sub").mkdir(parents=True)
    stop = threading.Event()

    def write() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            with contextlib.suppress(OSError):  # once "sub" is gone, nothing is created
                (exec_dir / "sub" / f"f{n}").write_text("x")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(list((exec_dir / "sub").iterdir())) < 100:  # it is writing
            time.sleep(0.001)
        stopping = threading.Timer(0.1, stop.set)  # well inside REMOVE_PATIENCE_S
        stopping.start()
        workdir.remove_exec_dir(exec_dir)
    finally:
        stop.set()
        writer.join()
    assert not exec_dir.exists()
