"""The tools gRPC API end to end: real server, real channel, real bubblewrap."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from phoenix_common.stubs import tools_pb2
from phoenix_tools import sandbox, selftest, workdir
from phoenix_tools.sandbox import Limits
from tests.tools.conftest import FakeMemory, Running, make_settings, running_server


async def test_health_check_reports_the_sandbox_mode(tools: Running) -> None:
    response = await tools.stub.HealthCheck(empty_pb2.Empty(), timeout=5)
    assert response.status == "healthy"
    assert "sandbox=bwrap" in response.message
    # the dash launcher passed the self-test, limits included (warm.py, selftest.py)
    assert "(warm sandboxes)" in response.message
    assert response.version


async def test_grpc_health_is_serving_after_the_self_test(tools: Running) -> None:
    stub = health_pb2_grpc.HealthStub(tools.channel)
    for service in ("", "tools.ToolExecutorService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_originals_command_exec_example_runs_in_the_sandbox(tools: Running) -> None:
    response = await tools.run("twin-sentinel", "command_exec", "echo hello && pwd && id -u")
    assert response.success
    assert response.exit_code == 0
    assert list(response.stdout_logs) == ["hello", "/work", "65534"]
    assert response.message.startswith("Execution completed (elapsed_ms=")
    assert len(response.execution_id) == 32


async def test_a_failing_command_reports_its_exit_code(tools: Running) -> None:
    response = await tools.run("twin-aegis", "command_exec", "ls /nonexistent")
    assert not response.success
    assert response.exit_code == 2
    assert response.message.startswith("Execution failed (exit_code=2, elapsed_ms=")
    assert "No such file" in response.stderr_logs[0]


async def test_policy_denial_is_the_originals_response(tools: Running) -> None:
    response = await tools.run("twin-trace", "command_exec", "ls")
    assert not response.success
    assert response.exit_code == 1
    assert list(response.stdout_logs) == []
    reason = "Twin 'twin-trace' is not authorized to execute 'command_exec'"
    assert response.message == reason
    assert list(response.stderr_logs) == [f"Policy violation: {reason}"]


async def test_restricted_program_inside_command_exec_is_denied(tools: Running) -> None:
    """Defect 5: the original checked only the tool name, so this ran."""
    response = await tools.run("twin-sentinel", "command_exec", "ls && rm -rf /work")
    assert not response.success
    assert response.message == "Command 'rm' is restricted"


async def test_missing_program_is_127(tools: Running) -> None:
    direct = await tools.run("twin-aegis", "no-such-program-xyz")
    assert (direct.exit_code, direct.message) == (127, "Command not found: no-such-program-xyz")
    via_shell = await tools.run("twin-aegis", "command_exec", "no-such-program-xyz")
    assert via_shell.exit_code == 127


async def test_non_executable_program_is_126(tools: Running) -> None:
    response = await tools.sh("twin-lab", "printf 'echo hi' > x; chmod 644 x; ./x")
    assert response.exit_code == 126


async def test_timeout_kills_the_command_with_exit_124(tools: Running) -> None:
    response = await tools.run("twin-aegis", "sleep", "30")
    assert not response.success
    assert response.exit_code == 124
    assert response.message == "execution_timeout"
    assert response.stderr_logs[-1] == "Execution timed out after 4000ms: /usr/bin/sleep 30"


async def test_long_output_is_truncated_and_flagged(tools: Running) -> None:
    response = await tools.run("twin-aegis", "seq", "1", "5000")
    assert response.success
    assert len(response.stdout_logs) == 200
    assert response.stdout_logs[-1] == "200"
    assert "output truncated to 200 lines / 32 KiB per stream: stdout (23893 bytes)" in (
        response.message
    )


async def test_file_write_lands_in_the_workspace_and_is_readable_read_only(
    tools: Running,
) -> None:
    written = await tools.run("twin-sentinel", "file_write", "notes/today.txt", "hello\nworld")
    assert written.success
    assert written.message == "Wrote 11 bytes to workspace/notes/today.txt"
    host = tools.settings.sandbox_dir / "twin-sentinel" / "workspace" / "notes" / "today.txt"
    assert host.read_text() == "hello\nworld"
    read = await tools.run("twin-sentinel", "command_exec", "cat /workspace/notes/today.txt")
    assert list(read.stdout_logs) == ["hello", "world"]


@pytest.mark.parametrize("path", ["../twin-aegis/workspace/x", "/etc/x", "a/../../x"])
async def test_file_write_traversal_is_permission_denied(tools: Running, path: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tools.run("twin-sentinel", "file_write", path, "x")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_file_write_needs_path_and_content(tools: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tools.run("twin-sentinel", "file_write", "only-a-path")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[relative_path, content]" in (err.value.details() or "")


async def test_file_write_in_the_original_orchestrators_key_value_shape(
    tools: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """The original sends sorted key=value strings; positionally that wrote a file named
    'content=hi' holding 'path=a.txt' and reported success."""
    with caplog.at_level(logging.INFO, logger="phoenix_tools.audit"):
        reply = await tools.run("twin-sentinel", "file_write", "content=hi there", "path=a.txt")
    assert reply.success, reply.message
    workspace = tools.settings.sandbox_dir / "twin-sentinel" / "workspace"
    assert (workspace / "a.txt").read_text() == "hi there"
    assert not list(workspace.glob("*=*"))
    record = next(r for r in caplog.records if getattr(r, "execution_id", "") == reply.execution_id)
    assert record.argv == ["file_write", "a.txt", "<8 bytes>"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["content=x"], "missing path"),
        (["path=a.txt"], "missing content"),
        (["content=x", "path=a", "mode=0777"], "args[2] is not one of"),
        (["content=x", "content=y", "path=a"], "names 'content' twice"),
        (["a=b.txt", "x"], "args[0] is not one of"),
    ],
)
async def test_file_write_that_is_neither_shape_is_refused_and_writes_nothing(
    tools: Running, args: list[str], fragment: str
) -> None:
    workspace = tools.settings.sandbox_dir / "twin-sentinel" / "workspace"
    before = sorted(p.name for p in workspace.rglob("*")) if workspace.exists() else []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tools.run("twin-sentinel", "file_write", *args)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (err.value.details() or "")
    after = sorted(p.name for p in workspace.rglob("*")) if workspace.exists() else []
    assert after == before


async def test_vector_query_in_the_original_orchestrators_key_value_shape(
    tools: Running, memory_fake: tuple[FakeMemory, int]
) -> None:
    fake, _ = memory_fake
    response = await tools.run("twin-trace", "vector_query", "namespace=threat.intel", "query=x y")
    assert response.success, response.message
    sent = fake.requests[-1]
    assert (sent.query, sent.namespace, sent.top_k) == ("x y", "threat.intel", 10)


async def test_vector_query_asks_the_memory_service(
    tools: Running, memory_fake: tuple[FakeMemory, int]
) -> None:
    fake, _ = memory_fake
    response = await tools.run("twin-trace", "vector_query", "threats", "intel", "2")
    assert response.success
    results = [json.loads(line) for line in response.stdout_logs]
    assert [r["content"] for r in results] == ["threats #0", "threats #1"]
    sent = fake.requests[-1]
    assert (sent.query, sent.namespace, sent.twin_id, sent.top_k) == (
        "threats",
        "intel",
        "twin-trace",
        2,
    )


async def test_vector_query_uses_the_request_namespace_by_default(
    tools: Running, memory_fake: tuple[FakeMemory, int]
) -> None:
    response = await tools.run("twin-trace", "vector_query", "x", namespace="ops")
    assert response.success
    assert memory_fake[0].requests[-1].namespace == "ops"


async def test_vector_query_rejects_a_bad_top_k(tools: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tools.run("twin-trace", "vector_query", "x", "", "500")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "top_k" in (err.value.details() or "")


async def test_vector_query_without_memory_is_unavailable(
    sandbox_root: Path, policy_file: Path
) -> None:
    settings = make_settings(
        sandbox_root / "nomem",
        TOOLS_POLICY_FILE=str(policy_file),
        MEMORY_GRPC_ADDR="127.0.0.1:1",
        TOOLS_MEMORY_TIMEOUT_MS=500,
        TOOLS_USE_BWRAP=False,
    )
    async with running_server(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.run("twin-trace", "vector_query", "x")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "memory service" in (err.value.details() or "")


@pytest.mark.parametrize(
    ("twin", "command", "args", "fragment"),
    [
        ("twin-aegis", "", [], "command is required"),
        ("", "ls", [], "twin_id is required"),
        ("../../etc", "ls", [], "is invalid"),
        ("twin-aegis", "ls\x00", [], "NUL"),
        ("twin-aegis", "echo", ["a\x00b"], "NUL"),
        ("twin-aegis", "echo", ["x" * 200_000], "at most 131072"),
    ],
)
async def test_bad_input_is_invalid_argument(
    tools: Running, twin: str, command: str, args: list[str], fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tools.run(twin, command, *args)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (err.value.details() or "")


async def test_an_unknown_twin_is_a_policy_violation_as_in_the_original(tools: Running) -> None:
    """The original's UI uses ids like user_<16 hex>; its clients expect success=false."""
    response = await tools.run("user_0123456789abcdef", "command_exec", "echo hi")
    assert not response.success
    assert response.exit_code == 1
    reason = "Twin 'user_0123456789abcdef' is not authorized to execute 'command_exec'"
    assert response.message == reason
    assert list(response.stderr_logs) == [f"Policy violation: {reason}"]
    assert list(response.stdout_logs) == []
    assert response.execution_id


async def test_every_execution_is_audited(tools: Running, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="phoenix_tools.audit"):
        allowed = await tools.run("twin-aegis", "ls", "/")
        denied = await tools.run("twin-aegis", "command_exec", "ls; rm x")
    records = [r for r in caplog.records if r.name == "phoenix_tools.audit"]
    by_id = {getattr(r, "execution_id", None): r for r in records}
    ran = by_id[allowed.execution_id]
    assert ran.twin == "twin-aegis"  # type: ignore[attr-defined]
    assert ran.argv == ["/usr/bin/ls", "/"]  # type: ignore[attr-defined]
    assert (ran.decision, ran.rule, ran.sandbox) == ("allow", "allowed:*", "bwrap")  # type: ignore[attr-defined]
    assert ran.exit_code == 0  # type: ignore[attr-defined]
    assert ran.programs == ["/usr/bin/ls"]  # type: ignore[attr-defined]
    assert ran.stdout_bytes > 0  # type: ignore[attr-defined]
    assert isinstance(ran.duration_ms, int)  # type: ignore[attr-defined]
    refused = by_id[denied.execution_id]
    assert (refused.decision, refused.rule) == ("deny", "restricted:rm")  # type: ignore[attr-defined]


async def test_file_write_content_is_not_logged(
    tools: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="phoenix_tools.audit"):
        reply = await tools.run("twin-sentinel", "file_write", "secret.txt", "hunter2")
    record = next(r for r in caplog.records if getattr(r, "execution_id", "") == reply.execution_id)
    assert record.argv == ["file_write", "secret.txt", "<7 bytes>"]  # type: ignore[attr-defined]
    assert "hunter2" not in caplog.text


async def test_audit_metrics_count_executions(tools: Running) -> None:
    from prometheus_client import REGISTRY

    def count() -> float:
        value = REGISTRY.get_sample_value(
            "phoenix_tools_executions_total",
            {"tool": "command_exec", "decision": "deny", "sandbox": "bwrap", "outcome": "denied"},
        )
        return value or 0.0

    before = count()
    await tools.run("twin-aegis", "command_exec", "shutdown now")
    assert count() == before + 1


async def test_policy_file_changes_apply_without_restart(sandbox_root: Path) -> None:
    path = sandbox_root / "reload.yaml"
    path.write_text("twins: {t1: {allowed: [command_exec], programs: [echo]}}")
    settings = make_settings(sandbox_root / "reload", TOOLS_POLICY_FILE=str(path))
    async with running_server(settings) as running:
        assert (await running.run("t1", "command_exec", "echo ok")).success
        assert not (await running.run("t1", "command_exec", "date")).success
        replacement = sandbox_root / "reload.yaml.new"
        replacement.write_text("twins: {t1: {allowed: [command_exec], programs: [date]}}")
        replacement.replace(path)  # how a ConfigMap update looks: a new file
        assert (await running.run("t1", "command_exec", "date")).success
        denied = await running.run("t1", "command_exec", "echo ok")
        assert denied.message == "'echo' is not in the twin's programs"
        path.write_text("twins: [broken")  # a bad edit keeps the last good policy
        assert (await running.run("t1", "command_exec", "date")).success


async def test_a_launcher_shell_that_sets_other_limits_is_not_used(sandbox_root: Path) -> None:
    """bash's ulimit has no -p for processes (there it is the pipe size), so its launcher
    stops before its R; had it set other limits, the self-test's check of /proc/self/limits
    would refuse it. Either way commands run without a launcher, with prlimit's limits."""
    settings = make_settings(sandbox_root / "bash-launcher", TOOLS_SANDBOX_SHELL="/usr/bin/bash")
    async with running_server(settings) as running:
        health = await running.stub.HealthCheck(empty_pb2.Empty(), timeout=5)
        assert "sandbox=bwrap" in health.message
        assert "(no warm sandboxes)" in health.message
        reply = await running.run("twin-aegis", "cat", "/proc/self/limits")
        assert reply.success, reply.message
        problems = selftest._limit_problems(
            "\n".join(reply.stdout_logs), running.tools.executor.runtime.limits
        )
        assert problems == []


def test_the_self_test_checks_the_commands_rlimits() -> None:
    limits = Limits(
        as_bytes=512 << 20, cpu_seconds=2, fsize_bytes=8 << 20, nofile=64, nproc=64,
        tmpfs_bytes=12 << 20,
    )  # fmt: skip
    right = [
        "Max cpu time              2                    2                    seconds",
        "Max file size             8388608              8388608              bytes",
        "Max processes             64                   64                   processes",
        "Max open files            64                   64                   files",
        "Max address space         536870912            536870912            bytes",
    ]
    assert selftest._limit_problems("\n".join(right), limits) == []
    doubled = [line.replace("8388608", "16777216") for line in right]  # 1 KiB blocks for -f
    assert selftest._limit_problems("\n".join(doubled), limits) == [
        "RLIMIT file size is ('16777216', '16777216'), not 8388608"
    ]
    assert selftest._limit_problems("\n".join(right[1:]), limits) == [
        "RLIMIT cpu time is missing, not 2"
    ]


async def test_without_a_usable_sandbox_commands_fail_closed(sandbox_root: Path) -> None:
    settings = make_settings(sandbox_root / "closed", TOOLS_USE_BWRAP=False)
    async with running_server(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.run("twin-aegis", "ls")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "TOOLS_ALLOW_UNSANDBOXED" in (err.value.details() or "")
        health = await running.stub.HealthCheck(empty_pb2.Empty(), timeout=5)
        assert health.status == "unhealthy"
        assert "sandbox=unavailable" in health.message
        stub = health_pb2_grpc.HealthStub(running.channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_safe_mode_forbids_the_unsandboxed_fallback(sandbox_root: Path) -> None:
    settings = make_settings(
        sandbox_root / "safe-fallback",
        TOOLS_USE_BWRAP=False,
        TOOLS_ALLOW_UNSANDBOXED=True,
        SAFE_MODE=True,
    )
    async with running_server(settings) as running:
        assert running.tools.executor.runtime.mode == "unavailable"
        assert "SAFE_MODE" in running.tools.executor.runtime.mode_reason


async def test_safe_mode_runs_command_exec_without_a_shell(sandbox_root: Path) -> None:
    settings = make_settings(sandbox_root / "safe", SAFE_MODE=True)
    async with running_server(settings) as running:
        plain = await running.run("twin-sentinel", "command_exec", "echo 'a;b' $HOME")
        assert not plain.success
        assert "SAFE_MODE allows no shell metacharacters" in plain.message
        quoted = await running.run("twin-sentinel", "command_exec", "echo 'a b'  c")
        assert quoted.success
        assert list(quoted.stdout_logs) == ["a b c"]


async def test_fallback_mode_runs_as_the_sandbox_uid_in_the_exec_dir(
    fallback_tools: Running,
) -> None:
    response = await fallback_tools.run("twin-sentinel", "command_exec", "id -u; pwd")
    assert response.success
    assert response.stdout_logs[0] == "65534"
    assert response.stdout_logs[1].startswith(str(fallback_tools.settings.sandbox_dir))
    health = await fallback_tools.stub.HealthCheck(empty_pb2.Empty(), timeout=5)
    assert (health.status, "sandbox=cwd" in health.message) == ("degraded", True)


async def test_concurrent_executions_do_not_interfere(tools: Running) -> None:
    replies = await asyncio.gather(
        *(tools.run("twin-aegis", "command_exec", f"echo {i} > f; cat f") for i in range(8))
    )
    assert [list(r.stdout_logs) for r in replies] == [[str(i)] for i in range(8)]


async def test_a_burst_beyond_the_warm_pool_gives_each_command_its_own_sandbox(
    tools: Running,
) -> None:
    """More commands at once than sandboxes kept ready, so later ones wait for a refill in
    flight or start their own (warm.WarmPool.take): each still gets a fresh, empty /work
    and its own namespaces, and none fails."""
    twin = "twin-sentinel"
    await tools.run(twin, "command_exec", "true")  # the twin now has sandboxes being set up
    replies = await asyncio.gather(
        *(
            tools.run(twin, "command_exec", f"ls -A /work | wc -l; echo {i} > f; cat f; echo $$")
            for i in range(12)
        )
    )
    assert [r.exit_code for r in replies] == [0] * 12, [r.message for r in replies]
    assert [list(r.stdout_logs)[:2] for r in replies] == [["0", str(i)] for i in range(12)]
    assert len({r.execution_id for r in replies}) == 12
    # $$ is the shell's pid in its own pid namespace: the same small number in every one
    assert len({r.stdout_logs[2] for r in replies}) == 1


async def test_exec_dirs_are_removed_after_the_run(tools: Running) -> None:
    """Removed once the reply is out (runtime._clean_up_later), not before it."""
    response = await tools.run("twin-aegis", "command_exec", "echo x > kept")
    assert response.success
    await tools.tools.executor.runtime.removals_done()
    assert not (tools.settings.sandbox_dir / "twin-aegis" / response.execution_id).exists()


async def test_reflection_lists_the_tools_service(tools: Running) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(tools.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: list[str] = []
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names += [s.name for s in reply.list_services_response.service]
    assert "tools.ToolExecutorService" in names
    assert "grpc.health.v1.Health" in names


async def test_without_setpriv_a_root_service_refuses_rather_than_fork_or_run_as_root(
    sandbox_root: Path,
) -> None:
    """No Popen(user=...) fallback: that would fork() the gRPC process (runner.py)."""
    from phoenix_common.errors import FailedPrecondition
    from phoenix_tools import selftest
    from phoenix_tools.runtime import SandboxRuntime

    runtime = SandboxRuntime(make_settings(sandbox_root / "no-setpriv"))
    runtime.prepare()
    assert runtime.drop_privileges  # the tests run as root, as the service may
    runtime.setpriv = None  # as on an image without util-linux's setpriv
    with pytest.raises(FailedPrecondition, match="setpriv"):
        await runtime.run("twin-aegis", ["/usr/bin/id", "-u"], mode="bwrap")
    mode, reason = await selftest.run_selftest(runtime)
    assert mode == "unavailable"
    assert "setpriv" in reason


async def test_with_a_tracer_provider_each_call_is_a_span_of_the_callers_trace(
    sandbox_root: Path,
) -> None:
    """Tracing configured (an exporter): one server span per call, a child of the caller's.
    Without a provider (the `tools` fixture, and the default) no tracing interceptor runs."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),)
    settings = make_settings(sandbox_root / "traced")
    async with running_server(settings, tracer_provider=provider) as running:
        request = tools_pb2.ExecutionRequest(twin_id="twin-aegis", command="true")
        reply = await running.stub.RequestExecution(request, metadata=metadata, timeout=30)
        assert reply.success
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("tools.ToolExecutorService/RequestExecution", SpanKind.SERVER)
    assert span.context is not None
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == trace_id
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


async def test_the_sandbox_etc_holds_only_the_generated_and_copied_files(tools: Running) -> None:
    """One read-only bind of the service's /etc directory (workdir.prepare_root): the
    generated account files and copies of the host's loader cache, time zone and
    alternatives, nothing else of the host's /etc, and nothing the command can change."""
    response = await tools.sh(
        "twin-lab",
        "ls -A /etc; readlink /etc/localtime; ls /etc/alternatives | wc -l; "
        "touch /etc/x 2>&1 | grep -c 'Read-only'",
    )
    host = Path("/etc")
    expected = sorted(
        [*sandbox.GENERATED_ETC, *(p.name for p in map(Path, sandbox.HOST_ETC_FILES) if p.exists())]
    )
    assert response.stdout_logs[: len(expected)] == expected
    rest = response.stdout_logs[len(expected) :]
    assert rest == [
        os.readlink(host / "localtime"),
        str(len(list((host / "alternatives").iterdir()))),
        "1",
    ]


def test_prepare_root_copies_the_host_files_and_replaces_older_copies(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "etc" / "alternatives").mkdir(parents=True)
    (host / "etc" / "ld.so.cache").write_bytes(b"cache-1")
    (host / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    (host / "etc" / "alternatives" / "editor").symlink_to("/usr/bin/vim.basic")
    root = tmp_path / "sandbox"
    etc = workdir.prepare_root(root, host_root=host)
    assert sorted(p.name for p in etc.iterdir()) == sorted(
        [*sandbox.GENERATED_ETC, "alternatives", "ld.so.cache", "localtime"]
    )
    assert (etc / "ld.so.cache").read_bytes() == b"cache-1"
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/Etc/UTC"
    assert os.readlink(etc / "alternatives" / "editor") == "/usr/bin/vim.basic"
    # The host changed: the next start copies what is there now, and drops what is gone.
    (host / "etc" / "ld.so.cache").write_bytes(b"cache-2")
    (host / "etc" / "alternatives" / "editor").unlink()
    (host / "etc" / "alternatives" / "pager").symlink_to("/usr/bin/less")
    (host / "etc" / "localtime").unlink()
    workdir.prepare_root(root, host_root=host)
    assert (etc / "ld.so.cache").read_bytes() == b"cache-2"
    assert [p.name for p in (etc / "alternatives").iterdir()] == ["pager"]
    assert not (etc / "localtime").exists()
    assert not (etc / "localtime").is_symlink()
    assert sorted(p.name for p in etc.iterdir() if p.name.startswith(".")) == []
