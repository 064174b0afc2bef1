"""Every row of sandbox.md section 5 (the adversarial table), against the real sandbox.

Attacks run as twin-lab, whose policy explicitly allows sh and python3, so these
tests exercise the sandbox itself rather than the policy in front of it.
Policy-level rows (A2-A4) are also covered in depth by test_policy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import grpc
import psutil
import pytest
from google.protobuf import empty_pb2

from tests.tools.conftest import Running

LAB = "twin-lab"


def sandbox_uid_processes(*servers: Running) -> list[psutil.Process]:
    """Live processes of the sandbox uid, except the idle sandboxes ``servers`` keep ready
    for later commands (warm.py): those never ran a command, so nothing of an attack."""
    idle = set()
    pools = [s.tools.executor.runtime.pool for s in servers]
    for box in (box for pool in pools if pool is not None for box in pool.ready()):
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(box.started.proc.pid)
            idle |= {leader.pid, *(c.pid for c in leader.children(recursive=True))}
    found = []
    for proc in psutil.process_iter(["uids", "status"]):
        uids = proc.info["uids"]
        live = uids is not None and uids.real == 65534 and proc.info["status"] != "zombie"
        if live and proc.pid not in idle:
            found.append(proc)
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes with ``text`` in their command line."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.pid)
    return found


async def wait_until(predicate: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def host_exists(path: str) -> bool:
    return Path(path).exists()


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


async def healthy(tools: Running) -> bool:
    reply = await tools.stub.HealthCheck(empty_pb2.Empty(), timeout=5)
    return bool(reply.status == "healthy")


# --- 5.1 Filesystem and secrets -------------------------------------------------------------


async def test_f1_shadow_is_not_readable(tools: Running) -> None:
    response = await tools.run(LAB, "cat", "/etc/shadow")
    assert response.exit_code != 0
    assert list(response.stdout_logs) == []
    assert "No such file or directory" in response.stderr_logs[0], response


async def test_f1_shadow_is_not_readable_even_when_present_in_the_view(
    fallback_tools: Running,
) -> None:
    """Fallback mode sees the host /etc; the dropped uid still cannot read shadow."""
    response = await fallback_tools.run(LAB, "cat", "/etc/shadow")
    assert response.exit_code != 0
    assert "Permission denied" in response.stderr_logs[0]


async def test_f2_service_secrets_are_not_in_the_sandbox(tools: Running, policy_file: Path) -> None:
    secrets = [
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "/run/secrets",
        "/root/.ssh",
        str(policy_file),
        str(tools.settings.sandbox_dir),
        "/work/main",
        "/etc/passwd-",
    ]
    response = await tools.sh(LAB, " ; ".join(f"ls -d {p} 2>&1" for p in secrets))
    assert len(response.stdout_logs) == len(secrets)
    for line in response.stdout_logs:
        assert "No such file or directory" in line


async def test_f3_writes_outside_the_workdir_fail_and_touch_nothing(tools: Running) -> None:
    marker = f"phx-f3-{uuid.uuid4().hex}"
    targets = [f"/etc/{marker}", f"/usr/{marker}", f"/{marker}", f"/workspace/{marker}"]
    script = " ; ".join(f"touch {t} 2>&1" for t in targets) + f" ; touch $HOME/{marker} && echo ok"
    response = await tools.sh(LAB, script)
    for line in response.stdout_logs[:-1]:
        assert "Read-only file system" in line
    assert response.stdout_logs[-1] == "ok"  # $HOME is /work, the execution's own directory
    assert not any(host_exists(p) for p in (f"/etc/{marker}", f"/usr/{marker}", f"/{marker}"))


async def test_f4_symlinks_resolve_inside_the_sandbox_view(tools: Running) -> None:
    before = digest("/etc/passwd")
    response = await tools.sh(
        LAB,
        "ln -s / root; echo x > root/etc/passwd 2>&1; echo rc=$?; "
        "ln -s /etc/shadow s; cat s 2>&1; echo rc=$?",
    )
    out = "\n".join([*response.stdout_logs, *response.stderr_logs])
    assert "Read-only file system" in out
    assert "No such file or directory" in out
    assert "rc=0" not in out
    assert digest("/etc/passwd") == before


async def test_f5_protected_workspace_files_cannot_be_written_or_replaced(tools: Running) -> None:
    for path, content in ((".git/config", "[core]\n"), (".bashrc", "# rc\n"), (".mcp.json", "{}")):
        assert (await tools.run(LAB, "file_write", path, content)).success
    response = await tools.sh(
        LAB,
        "cd /workspace; "
        "mkdir -p .git/hooks 2>&1; echo 'id' > .git/hooks/pre-commit 2>&1; "
        "echo evil >> .bashrc 2>&1; echo '{}' > .mcp.json 2>&1; "
        "ln -sf /tmp .codex 2>&1; mv .git/config .git/config.bak 2>&1; true",
    )
    assert response.stdout_logs
    assert all("Read-only file system" in line for line in response.stdout_logs)
    workspace = tools.settings.sandbox_dir / LAB / "workspace"
    assert (workspace / ".git" / "config").read_text() == "[core]\n"
    assert (workspace / ".bashrc").read_text() == "# rc\n"
    assert not (workspace / ".git" / "hooks").exists()
    assert not (workspace / ".codex").exists()


async def test_f5_files_left_in_work_do_not_persist_into_the_next_run(tools: Running) -> None:
    first = await tools.sh(LAB, "echo evil > .bashrc; mkdir -p .git/hooks; echo x > .git/hooks/h")
    assert first.success
    second = await tools.sh(LAB, "ls -A /work | wc -l")
    assert list(second.stdout_logs) == ["0"]


async def test_f6_hardlinks_to_host_files_are_refused(tools: Running) -> None:
    response = await tools.sh(LAB, "ln /etc/passwd /work/h 2>&1; ln /usr/bin/ls /work/l 2>&1")
    assert len(response.stdout_logs) == 2
    for line in response.stdout_logs:
        assert "Invalid cross-device link" in line or "Operation not permitted" in line


async def test_f7_device_nodes_cannot_be_created(tools: Running) -> None:
    response = await tools.sh(LAB, "mknod /work/mem c 1 1 2>&1; mknod /tmp/null c 1 3 2>&1")
    assert len(response.stdout_logs) == 2
    assert all("Operation not permitted" in line for line in response.stdout_logs)


async def test_f8_file_write_outside_the_workspace_is_refused_before_anything_runs(
    tools: Running,
) -> None:
    workspace = tools.settings.sandbox_dir / LAB / "workspace"
    outside = tools.settings.sandbox_dir / "f8-outside"
    outside.mkdir(exist_ok=True)
    link = workspace / "f8-link"
    if not link.is_symlink():
        link.symlink_to(outside)  # as if planted: the service must not follow it
    cases = ["../../etc/x", "/etc/x", "/workspace-evil/x", "f8-link/x", "f8-link/new/deeper"]
    for path in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await tools.run(LAB, "file_write", path, "x")
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, path
    assert list(outside.iterdir()) == []


async def test_f9_nothing_leaks_between_runs_or_twins(tools: Running) -> None:
    secret = uuid.uuid4().hex
    write = await tools.sh(LAB, f"echo {secret} > /tmp/x; echo {secret} > /work/x; cat /tmp/x")
    assert list(write.stdout_logs) == [secret]
    for twin in (LAB, "twin-other"):
        read = await tools.sh(twin, "cat /tmp/x /work/x 2>&1; ls /tmp | wc -l")
        assert secret not in "\n".join(read.stdout_logs)
        assert read.stdout_logs[-1] == "0"


# --- 5.2 Environment and process visibility -------------------------------------------------


async def test_e1_env_holds_only_the_allowlisted_variables(tools: Running) -> None:
    response = await tools.run(LAB, "printenv")
    names = sorted(line.split("=", 1)[0] for line in response.stdout_logs)
    assert names == ["HOME", "LANG", "PATH", "PWD", "TMPDIR"]


async def test_e2_pid1_environ_and_cmdline_hold_no_secrets(
    tools: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("PHOENIX_TEST_SECRET_TOKEN", secret)
    response = await tools.sh(
        LAB, "wc -c < /proc/1/environ; tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/environ"
    )
    assert response.stdout_logs[0] == "0"
    assert "bwrap" in response.stdout_logs[1]
    assert secret not in "\n".join(response.stdout_logs)


async def test_e3_only_sandbox_processes_are_visible(tools: Running) -> None:
    response = await tools.sh(LAB, "ls /proc | grep -c '^[0-9]'; ps -e --no-headers | wc -l")
    pids, ps_lines = (int(x) for x in response.stdout_logs)
    assert pids <= 6
    assert ps_lines <= 6


async def test_e4_fallback_mode_cannot_read_the_services_environ(fallback_tools: Running) -> None:
    response = await fallback_tools.run(LAB, "cat", f"/proc/{os.getpid()}/environ")
    assert response.exit_code != 0
    assert "Permission denied" in response.stderr_logs[0]


async def test_e5_request_supplied_environment_never_reaches_the_command(tools: Running) -> None:
    metadata = {
        "LD_PRELOAD": "/work/evil.so",
        "BASH_ENV": "/work/x",
        "PATH": "/work",
        "GIT_SSH_COMMAND": "id",
        "PYTHONSTARTUP": "/work/x",
    }
    response = await tools.run(LAB, "printenv", metadata=metadata)
    assert not any(k in "\n".join(response.stdout_logs) for k in metadata if k != "PATH")
    assert "PATH=/usr/local/bin" in "\n".join(response.stdout_logs)
    for line in (
        "LD_PRELOAD=/work/x.so ls",
        "BASH_ENV=/work/x ls",
        "PATH=/work:$PATH ls",
        "GIT_SSH_COMMAND=id git fetch",
        "PYTHONSTARTUP=/work/x ls",
    ):
        denied = await tools.run("twin-aegis", "command_exec", line)
        assert not denied.success
        assert "variable assignments are not allowed" in denied.message
    via_env = await tools.run("twin-aegis", "command_exec", "env LD_PRELOAD=/work/x.so ls")
    assert "interpreter:env" not in via_env.message
    assert "can run arbitrary code" in via_env.message


# --- 5.3 Network ----------------------------------------------------------------------------

CONNECT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.settimeout(2)
print(s.connect_ex((host, port)))
"""


async def test_n1_network_clients_fail(tools: Running) -> None:
    clients = {
        "curl": "curl -sS -m 2 http://example.com",
        "wget": "wget -q -T 2 -O- http://example.com",
        "ssh": "ssh -o ConnectTimeout=2 -o BatchMode=yes git@github.com",
        "getent": "getent ahosts example.com",
        "bash": "bash -c 'echo > /dev/tcp/1.1.1.1/80'",
        "nc": "nc -w 2 1.1.1.1 80",
        "ping": "ping -c 1 -W 2 1.1.1.1",
    }
    present = {name: line for name, line in clients.items() if shutil.which(name)}
    assert {"curl", "getent", "bash"} <= set(present)  # the host has these; tests need some
    for name, line in present.items():
        response = await tools.sh(LAB, line)
        assert response.exit_code != 0, name
    unreachable = await tools.run(LAB, "python3", "-c", CONNECT, "1.1.1.1", "80")
    assert list(unreachable.stdout_logs) == ["101"]  # ENETUNREACH


async def test_n2_the_services_own_port_and_metadata_endpoints_are_unreachable(
    tools: Running,
) -> None:
    own = await tools.run(LAB, "python3", "-c", CONNECT, "127.0.0.1", str(tools.tools.port))
    assert list(own.stdout_logs) == ["111"]  # ECONNREFUSED: a different loopback
    for host in ("169.254.169.254", "10.96.0.1", "::1"):
        response = await tools.run(LAB, "python3", "-c", CONNECT, host, "443")
        assert response.stdout_logs[0] in ("101", "111", "99"), host


async def test_n3_unix_sockets_of_the_host_cannot_be_reached(tools: Running) -> None:
    name = f"phx-n3-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    try:
        code = f"import socket; s = socket.socket(socket.AF_UNIX)\nprint(s.connect_ex('\\0{name}'))"
        response = await tools.py(LAB, code)
        assert list(response.stdout_logs) == ["111"]  # abstract sockets are per netns
        listed = await tools.sh(LAB, "ls /run /var/run /tmp 2>&1 | grep -c sock || true")
        assert listed.stdout_logs[-1] == "0"
    finally:
        listener.close()


async def test_n4_without_a_proxy_every_destination_is_unreachable(tools: Running) -> None:
    """No egress proxy is implemented: IP literals, odd ports and names all fail."""
    for host, port in (("1.1.1.1", "443"), ("8.8.8.8", "53"), ("93.184.216.34", "8080")):
        response = await tools.run(LAB, "python3", "-c", CONNECT, host, port)
        assert list(response.stdout_logs) == ["101"]
    lookup = await tools.run(LAB, "getent", "hosts", "x.com")
    assert lookup.exit_code != 0


# --- 5.4 Resource exhaustion and lifecycle --------------------------------------------------

FORK_BOMB = """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as err:
    print("fork failed", n, err.errno)
"""


async def test_r1_fork_bomb_hits_the_process_limit_and_leaves_nothing(tools: Running) -> None:
    response = await tools.py(LAB, FORK_BOMB)
    words = response.stdout_logs[0].split()
    assert words[:2] == ["fork", "failed"]
    assert int(words[2]) < 64
    assert words[3] == "11"  # EAGAIN
    assert await healthy(tools)
    assert await wait_until(lambda: not sandbox_uid_processes(tools))


async def test_r2_memory_bomb_gets_memory_error(tools: Running) -> None:
    response = await tools.py(LAB, "b = bytearray(2 * 1024**3)")
    assert response.exit_code == 1
    assert "MemoryError" in response.stderr_logs[-1]
    assert await healthy(tools)


async def test_r3_disk_fill_is_bounded(tools: Running) -> None:
    big = await tools.sh(LAB, "head -c 20M /dev/zero > /work/big; echo rc=$?; ls -l /work/big")
    assert "rc=153" in big.stdout_logs[0]  # 128 + SIGXFSZ
    assert " 8388608 " in big.stdout_logs[1]  # stopped at TOOLS_RLIMIT_FSIZE_MB=8
    fill_tmp = await tools.py(
        LAB,
        "import errno\n"
        "try:\n"
        "    for i in range(4):\n"
        "        open(f'/tmp/f{i}', 'wb').write(b'x' * 5 * 1024 * 1024)\n"
        "except OSError as err:\n"
        "    print('stopped at', i, errno.errorcode[err.errno])\n",
    )
    assert list(fill_tmp.stdout_logs) == ["stopped at 2 ENOSPC"]  # tmpfs --size 12 MiB


async def test_r4_cpu_spin_is_killed(tools: Running) -> None:
    response = await tools.py(LAB, "while True: pass")
    assert not response.success
    # RLIMIT_CPU (2 s here) is the backstop: SIGXCPU arrives before the 4 s wall timeout.
    assert response.exit_code in (124, 128 + signal.SIGXCPU, 128 + signal.SIGKILL)
    assert await wait_until(lambda: not sandbox_uid_processes(tools))


async def test_r4_wall_clock_timeout_kills_a_sleeper(tools: Running) -> None:
    response = await tools.sh(LAB, "sleep 100")
    assert response.exit_code == 124
    assert response.message == "execution_timeout"


async def test_r5_infinite_output_is_cut_off_and_flagged(tools: Running) -> None:
    for command in (("yes",), ("cat", "/dev/urandom")):
        response = await tools.run(LAB, *command)
        assert not response.success
        assert response.message.startswith("output_limit_exceeded"), command
        assert len(response.stdout_logs) <= 200
        assert sum(len(line) for line in response.stdout_logs) <= 32 * 1024
    assert await healthy(tools)


async def test_r6_orphans_do_not_survive_exit_or_timeout(tools: Running) -> None:
    exited = await tools.sh(
        LAB,
        "sleep 300 & setsid sleep 301 & nohup sleep 302 >/dev/null 2>&1 & "
        "(sleep 303 &) ; echo started",
    )
    assert list(exited.stdout_logs) == ["started"]
    assert await wait_until(lambda: not sandbox_uid_processes(tools))
    timed_out = await tools.sh(LAB, "trap '' TERM HUP INT; setsid sleep 304 & sleep 305")
    assert timed_out.exit_code == 124
    assert await wait_until(lambda: not sandbox_uid_processes(tools))


async def test_r7_a_child_holding_stdout_does_not_hang_the_service(tools: Running) -> None:
    response = await tools.sh(LAB, "(sleep 60; echo late) & echo done")
    assert response.exit_code == 0
    assert list(response.stdout_logs) == ["done"]


@pytest.mark.parametrize(
    "left_behind",
    [
        "(sleep 60; echo late) &",  # holds the output pipes: drained, then killed
        # Lets go of them: nothing to wait for, and killed all the same (the group is).
        "(exec >/dev/null 2>&1; sleep 61) &",
    ],
)
async def test_r7_fallback_mode_kills_what_the_command_left_behind(
    fallback_tools: Running, tools: Running, left_behind: str
) -> None:
    response = await fallback_tools.sh(LAB, f"{left_behind} echo done")
    assert response.exit_code == 0
    assert list(response.stdout_logs) == ["done"]
    # `tools` (a session fixture) keeps its sandboxes ready meanwhile: they are not leftovers.
    assert await wait_until(lambda: not sandbox_uid_processes(fallback_tools, tools))


async def test_r8_stdin_is_at_eof(tools: Running) -> None:
    response = await tools.run(LAB, "cat")
    assert response.success
    assert list(response.stdout_logs) == []


async def test_r9_the_sandbox_dies_with_the_service(tools: Running) -> None:
    # Unique per run: a survivor of an earlier run must not be mistaken for this one.
    marker = f"1000.{secrets.randbelow(10**6):06d}"
    script = textwrap.dedent(f"""
        import asyncio
        from phoenix_tools.runtime import SandboxRuntime
        from phoenix_tools.settings import ToolsSettings
        settings = ToolsSettings(SANDBOX_DIR={str(tools.settings.sandbox_dir)!r},
                                 TOOLS_EXEC_TIMEOUT_MS=60000)
        runtime = SandboxRuntime(settings)
        runtime.prepare()
        asyncio.run(runtime.run("twin-lab", ["/usr/bin/sleep", "{marker}"], mode="bwrap"))
    """)
    service = subprocess.Popen([sys.executable, "-c", script])  # noqa: ASYNC220 - a host process outliving the test

    def sleeping(*, command_only: bool = False) -> list[psutil.Process]:
        found = []
        for proc in sandbox_uid_processes():
            try:
                if marker in " ".join(proc.cmdline()) and (
                    not command_only or proc.name() == "sleep"
                ):
                    found.append(proc)
            except psutil.Error:  # exited (or became a zombie) while we looked
                continue
        return found

    try:
        # Kill mid-command, once `sleep` itself runs inside the sandbox (a kill while the
        # chain is still being exec'd is the next test).
        assert await wait_until(lambda: bool(sleeping(command_only=True)), timeout_s=20)
        service.send_signal(signal.SIGKILL)
        assert await wait_until(lambda: not sleeping())
    finally:
        service.kill()
        service.wait()


async def test_r9_a_kill_while_the_chain_is_still_execing_leaves_nothing(
    tools: Running,
) -> None:
    """Killed before bwrap has started, so before its --die-with-parent is armed: the step
    after setpriv (bwrap) is held back for a while by a wrapper, and the service is killed
    meanwhile. setpriv's --pdeathsig must take the rest of the chain down (without it, the
    chain went on to start the sandbox as an orphan)."""
    marker = f"r9chain-{secrets.token_hex(6)}"
    root = tools.settings.sandbox_dir.parent / marker
    root.mkdir(mode=0o755)
    slow_bwrap = root / "slow-bwrap"
    slow_bwrap.write_text(f'#!/bin/sh\nsleep 2\nexec {shutil.which("bwrap")} "$@"\n')
    slow_bwrap.chmod(0o755)
    script = textwrap.dedent(f"""
        import asyncio
        from phoenix_tools.runtime import SandboxRuntime
        from phoenix_tools.settings import ToolsSettings
        runtime = SandboxRuntime(ToolsSettings(SANDBOX_DIR={str(root / "sandbox")!r},
                                               TOOLS_EXEC_TIMEOUT_MS=60000))
        runtime.prepare()
        runtime.bwrap = {str(slow_bwrap)!r}
        asyncio.run(runtime.run("twin-lab", ["/usr/bin/sleep", "600"], mode="bwrap"))
    """)
    service = subprocess.Popen([sys.executable, "-c", script])  # noqa: ASYNC220 - a host process outliving the test

    def chain() -> list[int]:
        return [p for p in processes_mentioning(marker) if p != service.pid]

    try:
        assert await wait_until(lambda: bool(chain()), timeout_s=30)
        names = set()
        for pid in chain():
            with contextlib.suppress(psutil.Error):
                names.add(psutil.Process(pid).name())
        assert "bwrap" not in names, names  # killed inside the window, as intended
        service.send_signal(signal.SIGKILL)
        # The wrapper sleeps 2 s before exec'ing the rest; give a survivor time to show.
        await asyncio.sleep(3)
        assert chain() == []
    finally:
        service.kill()
        service.wait()
        shutil.rmtree(root, ignore_errors=True)


# --- 5.5 Privilege and kernel surface -------------------------------------------------------


async def test_p1_setuid_binaries_do_not_elevate(tools: Running) -> None:
    response = await tools.sh(
        LAB,
        "grep NoNewPrivs /proc/self/status; su -c id root </dev/null 2>&1; echo su=$?; "
        "cp /usr/bin/id /work/id; chmod u+s /work/id; /work/id -u; "
        "python3 -c 'import os; os.setuid(0)' 2>&1 | tail -1",
    )
    out = response.stdout_logs
    assert out[0].split() == ["NoNewPrivs:", "1"]
    assert "su=0" not in out
    assert "65534" in out
    # uid 0 is not even mapped in the sandbox's user namespace
    assert "Invalid argument" in out[-1] or "Operation not permitted" in out[-1]


async def test_p2_no_capabilities(tools: Running) -> None:
    response = await tools.sh(LAB, "grep Cap /proc/self/status")
    caps = dict(line.split(":\t") for line in response.stdout_logs)
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(caps[name], 16) == 0, name


async def test_p3_nested_user_namespaces_are_refused(tools: Running) -> None:
    response = await tools.sh(LAB, "unshare -U true 2>&1; echo rc=$?")
    assert response.stdout_logs[-1] != "rc=0"
    assert "unshare failed" in response.stdout_logs[0]


async def test_p4_kill_all_affects_only_the_sandbox(tools: Running) -> None:
    bystander = subprocess.Popen(  # noqa: ASYNC220 - a host process of the same uid
        ["/usr/bin/sleep", "30"], user=65534, group=65534, extra_groups=[]
    )
    try:
        response = await tools.sh(LAB, f"kill -9 {os.getpid()} 2>&1; kill -9 -1; echo after")
        assert "No such process" in response.stdout_logs[0]
        assert bystander.poll() is None  # same uid on the host, still alive
        assert await healthy(tools)
    finally:
        bystander.kill()
        bystander.wait()


SYSCALLS = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    return errno.errorcode.get(ctypes.get_errno(), "OK") if rc == -1 else "OK"
child = os.fork()
if child == 0:
    import time; time.sleep(5); os._exit(0)
buf = ctypes.create_string_buffer(8)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
results = {
    "ptrace": call(101, 16, child, 0, 0),           # PTRACE_ATTACH to our own child
    "process_vm_readv": call(310, child, iov, 1, iov, 1, 0),
    "io_uring_setup": call(425, 8, ctypes.create_string_buffer(120)),
    "ioctl_TIOCSTI": call(16, 0, 0x5412, ctypes.byref(ctypes.c_char(b"x"))),
    "ioctl_TIOCLINUX": call(16, 0, 0x541C, ctypes.byref(ctypes.c_char(b"x"))),
    "keyctl": call(250, 0, 0, 0, 0, 0),
    "add_key": call(248, b"user", b"k", b"v", 1, 0xFFFFFFFD),
    "bpf": call(321, 0, 0, 0),
    "perf_event_open": call(298, ctypes.create_string_buffer(128), 0, -1, -1, 0),
    "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, 0),
    "fsopen": call(430, b"tmpfs", 0),
    "open_tree": call(428, -100, b"/", 1),
    "unshare": call(272, 0x10000000),
    "setns": call(308, 0, 0),
    "clone3": call(435, 0, 0),
}
os.kill(child, 9)
for name, result in results.items():
    print(name, result)
"""


@pytest.fixture(scope="module")
def syscall_results() -> dict[str, str]:
    return {}


async def _syscalls(tools: Running, cache: dict[str, str]) -> dict[str, str]:
    if not cache:
        response = await tools.py(LAB, SYSCALLS)
        assert response.success, list(response.stderr_logs)
        cache.update(line.split() for line in response.stdout_logs)  # type: ignore[misc]
    return cache


async def test_p5_ptrace_process_vm_and_io_uring_are_refused(
    tools: Running, syscall_results: dict[str, str]
) -> None:
    results = await _syscalls(tools, syscall_results)
    for name in ("ptrace", "process_vm_readv", "io_uring_setup"):
        assert results[name] == "EPERM", name


async def test_p6_terminal_injection_is_impossible(
    tools: Running, syscall_results: dict[str, str]
) -> None:
    results = await _syscalls(tools, syscall_results)
    assert results["ioctl_TIOCSTI"] == "EPERM"
    assert results["ioctl_TIOCLINUX"] == "EPERM"
    no_tty = await tools.sh(LAB, "echo x > /dev/tty 2>&1; echo rc=$?")
    assert no_tty.stdout_logs == ["rc=2"]
    assert "No such device or address" in no_tty.stderr_logs[0]  # --new-session: no ctty


async def test_p7_kernel_surface_syscalls_are_refused(
    tools: Running, syscall_results: dict[str, str]
) -> None:
    results = await _syscalls(tools, syscall_results)
    for name in (
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "mount",
        "fsopen",
        "open_tree",
        "unshare",
        "setns",
    ):
        assert results[name] == "EPERM", name
    assert results["clone3"] == "ENOSYS"


# --- 5.6 Policy and approval bypass ---------------------------------------------------------


async def test_a1_metacharacters_in_an_argv_element_are_literal(tools: Running) -> None:
    payload = "x; touch pwned $(id) `id` && rm -rf /work"
    response = await tools.run("twin-aegis", "echo", payload)
    assert list(response.stdout_logs) == [payload]
    listing = await tools.run("twin-aegis", "command_exec", "ls /work")
    assert list(listing.stdout_logs) == []


async def test_a2_chaining_through_the_shell_is_checked_command_by_command(
    tools: Running,
) -> None:
    denied = {
        "ls && rm -rf /work": "restricted:rm",
        "ls | sh": "arbitrary code",
        "echo $(rm x)": "restricted:rm",
        "echo `reboot`": "restricted",
        "ls; (shutdown now)": "restricted",
        "X=1 ls": "variable assignments",
        "cat <<EOF\nrm\nEOF": "'<<'",
        "for f in *; do rm $f; done": "for",
    }
    for line, fragment in denied.items():
        response = await tools.run("twin-sentinel", "command_exec", line)
        assert not response.success, line
        assert response.exit_code == 1
        assert response.stderr_logs[0].startswith("Policy violation: ")
        assert fragment in response.message or fragment == "restricted:rm", line
    allowed = await tools.run("twin-sentinel", "command_exec", "echo a | tr a b && echo c > f")
    assert list(allowed.stdout_logs) == ["b"]


async def test_a3_exec_capable_flags_are_not_auto_allowed(tools: Running) -> None:
    lines = (
        "find / -maxdepth 0 -exec id ;",
        "git -c core.pager=id log",
        "tar -cf /work/x.tar --to-command=id /work",
        "sed -n 1e /etc/hostname",
    )
    for line in lines:
        response = await tools.run("twin-sentinel", "command_exec", line)
        assert not response.success, line
        assert "can run or write arbitrary things" in response.message, line


async def test_a4_argv0_tricks_are_resolved_or_refused(tools: Running) -> None:
    cases = {
        "/tmp/evil/git": "outside the read-only system tree",  # noqa: S108 - a path refused
        "../../usr/bin/rm": "Command 'rm' is restricted",
        "/usr/bin/../bin/rm": "Command 'rm' is restricted",
        "r\u0435m": "Unicode lookalikes",
        "rm\u00a0": "U+00A0",
        "rm ": "U+0020",
    }
    for name, fragment in cases.items():
        response = await tools.run("twin-aegis", name, "-rf", "/work")
        assert not response.success, name
        assert fragment in response.message, name


async def test_a4_a_copied_interpreter_reached_by_a_relative_path_is_refused(
    tools: Running,
) -> None:
    line = (
        "mkdir -p /tmp/x /tmp/usr/bin && cp /usr/bin/python3 /tmp/usr/bin/ls && "
        "cd /tmp/x && ../usr/bin/ls -c 'print(1)'"
    )
    response = await tools.run("twin-aegis", "command_exec", line)
    assert not response.success
    assert response.stderr_logs[0].startswith("Policy violation: relative program path")
    direct = await tools.run("twin-aegis", "command_exec", "cp /usr/bin/python3 /tmp/ls; /tmp/ls")
    assert "outside the read-only system tree" in direct.message


async def test_a5_the_executed_argv_is_the_approved_canonical_one(
    tools: Running, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="phoenix_tools.audit"):
        response = await tools.run("twin-aegis", "../../bin/ls", "-d", ".")
    assert list(response.stdout_logs) == ["."]
    record = next(
        r for r in caplog.records if getattr(r, "execution_id", "") == response.execution_id
    )
    assert record.argv == ["/usr/bin/ls", "-d", "."]  # type: ignore[attr-defined]
    fresh = await tools.run("twin-aegis", "command_exec", "pwd; ls -A | wc -l")
    assert list(fresh.stdout_logs) == ["/work", "0"]  # cwd is always a fresh, service-made dir


async def test_a6_nul_bytes_and_huge_requests_are_invalid_argument(tools: Running) -> None:
    cases = [
        ("twin-aegis", "echo", ["a\x00b"], {}),
        ("twin-aegis", "ec\x00ho", [], {}),
        ("twin-aegis", "echo", ["x" * 100_000, "y" * 100_000], {}),
        ("twin-aegis", "echo", ["x"] * 5000, {}),
        ("twin-aegis", "echo", [], {"metadata": {f"K{i}": "v" * 1000 for i in range(40)}}),
    ]
    for twin, command, args, extra in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await tools.run(twin, command, *args, **extra)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
