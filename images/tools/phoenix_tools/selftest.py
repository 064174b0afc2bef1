"""The startup self-test that decides the sandbox mode: bwrap, cwd or unavailable.

bwrap mode needs ``bwrap ... true`` to work and a probe inside to show the
properties the design relies on: no effective capabilities, no_new_privs set,
a non-root uid, no network interface but loopback, and an empty
``/proc/1/environ``. If any fails, the cwd fallback is used only when
TOOLS_ALLOW_UNSANDBOXED allows it, SAFE_MODE is off, and commands can run
under a uid other than the service's; otherwise the mode is "unavailable" and
every command fails closed.
"""

from __future__ import annotations

import logging
import os
import re

from phoenix_common.errors import PhoenixError
from phoenix_tools.runtime import SandboxRuntime
from phoenix_tools.sandbox import Limits, SandboxMode

logger = logging.getLogger(__name__)
SELFTEST_TWIN = "phoenix-selftest"
PROBE = (
    "grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/self/status; "
    "grep -E '^Max (cpu time|file size|processes|open files|address space) ' /proc/self/limits; "
    "echo environ=$(wc -c < /proc/1/environ); "
    "echo netdevs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ,)"
)


def check_probe(lines: list[str], limits: Limits | None = None) -> list[str]:
    """Problems found in the probe's output; empty means the sandbox is as designed.

    With ``limits``, the command's rlimits must be exactly those (soft and hard): whichever
    step set them (the launcher's ulimit or prlimit), a shell that counts in other units
    or lacks a limit is caught here rather than running commands with the wrong ones."""
    text = "\n".join(lines)
    problems = []
    if limits is not None:
        problems += _limit_problems(text, limits)
    if not re.search(r"^CapEff:\s*0+$", text, re.MULTILINE):
        problems.append("capabilities are not all dropped (CapEff != 0)")
    if not re.search(r"^NoNewPrivs:\s*1$", text, re.MULTILINE):
        problems.append("no_new_privs is not set")
    uid = re.search(r"^Uid:\s*(\d+)", text, re.MULTILINE)
    if uid is None or uid.group(1) == "0":
        problems.append("the command runs as uid 0")
    if not re.search(r"^environ=0$", text, re.MULTILINE):
        problems.append("/proc/1/environ is not empty")
    nets = re.search(r"^netdevs=(.*)$", text, re.MULTILINE)
    if nets is None or nets.group(1).strip(",") not in ("", "lo"):
        problems.append(f"network interfaces besides lo: {nets.group(1) if nets else '?'}")
    return problems


async def run_selftest(runtime: SandboxRuntime) -> tuple[SandboxMode, str]:  # noqa: PLR0911 - one return per mode
    """Decide the mode, store it on the runtime, and say why."""
    settings = runtime.settings
    reason = "TOOLS_USE_BWRAP is off"
    if settings.use_bwrap:
        problem = await _probe_bwrap(runtime)
        if problem is not None and runtime.shell is not None:
            # The launcher (warm.py) is an optimisation: without it, bwrap runs commands itself.
            logger.warning("sandbox launcher unusable", extra={"reason": problem})
            runtime.shell = None
            problem = await _probe_bwrap(runtime)
        if problem is None:
            runtime.enable_warm_pool()
            launcher = "warm sandboxes" if runtime.pool is not None else "no warm sandboxes"
            return _set(runtime, "bwrap", f"bubblewrap self-test passed ({launcher})")
        reason = f"bubblewrap self-test failed: {problem}"
        logger.error("bubblewrap unusable", extra={"reason": reason})
    if not settings.allow_unsandboxed:
        return _set(runtime, "unavailable", f"{reason}; TOOLS_ALLOW_UNSANDBOXED is off")
    if settings.safe_mode:
        return _set(runtime, "unavailable", f"{reason}; SAFE_MODE forbids the cwd fallback")
    if not runtime.drop_privileges:
        return _set(
            runtime,
            "unavailable",
            f"{reason}; the cwd fallback needs a uid other than the service's, "
            "and the service does not run as root to switch",
        )
    try:
        result = await runtime.run(SELFTEST_TWIN, ["/usr/bin/id", "-u"], mode="cwd", timeout_s=10)
    except (PhoenixError, OSError) as err:
        return _set(runtime, "unavailable", f"{reason}; fallback self-test failed: {err}")
    if result.exit_code != 0 or result.stdout != [str(settings.sandbox_uid)]:
        return _set(runtime, "unavailable", f"{reason}; fallback self-test failed: {result}")
    logger.warning("running commands WITHOUT a sandbox (cwd fallback)", extra={"reason": reason})
    return _set(runtime, "cwd", f"{reason}; cwd-only fallback allowed by TOOLS_ALLOW_UNSANDBOXED")


async def _probe_bwrap(runtime: SandboxRuntime) -> str | None:
    if not os.path.isabs(runtime.bwrap) or not os.access(runtime.bwrap, os.X_OK):
        return f"{runtime.settings.bwrap_path!r} not found on PATH"
    try:
        true = await runtime.run(SELFTEST_TWIN, ["/usr/bin/true"], mode="bwrap", timeout_s=10)
        if true.exit_code != 0:
            return f"'bwrap ... true' exited {true.exit_code}: {' | '.join(true.stderr)[:500]}"
        probe = await runtime.run(SELFTEST_TWIN, ["/bin/sh", "-c", PROBE], mode="bwrap")
    except (PhoenixError, OSError) as err:
        return str(err)
    if probe.exit_code != 0:
        return f"probe exited {probe.exit_code}: {' | '.join(probe.stderr)[:500]}"
    problems = check_probe(probe.stdout, runtime.limits)
    return "; ".join(problems) if problems else None


def _limit_problems(text: str, limits: Limits) -> list[str]:
    expected = {
        "cpu time": limits.cpu_seconds,
        "file size": limits.fsize_bytes // 512 * 512,
        "processes": limits.nproc,
        "open files": limits.nofile,
        "address space": limits.as_bytes // 1024 * 1024,
    }
    problems = []
    for name, want in expected.items():
        found = re.search(rf"^Max {name}\s+(\S+)\s+(\S+)", text, re.MULTILINE)
        got = (found.group(1), found.group(2)) if found else None
        if got != (str(want), str(want)):
            problems.append(f"RLIMIT {name} is {got or 'missing'}, not {want}")
    return problems


def _set(runtime: SandboxRuntime, mode: SandboxMode, reason: str) -> tuple[SandboxMode, str]:
    runtime.mode = mode
    runtime.mode_reason = reason
    logger.info("sandbox mode decided", extra={"sandbox": mode, "reason": reason})
    return mode, reason
