"""Run the GitOps health checks on one object: Argo CD's Lua and kstatus.

The Argo CD health Lua runs under lua5.4 and under gopher-lua (Lua 5.1, the VM Argo CD
embeds, through the Go helper in tests/gitops/kstatus, which also computes kstatus).

Shared by tests/gitops (sample statuses) and tests/e2e/test_helm.py (a live twin).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from scripts.cache import cache_root

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "helm" / "phoenixtwin" / "files" / "argocd-health.lua"
KSTATUS_SRC = Path(__file__).resolve().parent / "kstatus"
LUA = os.environ.get("LUA", "lua5.4")

# Argo CD calls the script with the object in the global `obj` and reads the returned table.
_RUNNER = """
local path = arg[1]
local env = setmetatable({obj = %s}, {__index = _G})
local chunk = assert(loadfile(path, "t", env))
local hs = chunk()
io.write(tostring(hs.status), "\\n", tostring(hs.message), "\\n")
"""


def lua_literal(value: Any) -> str:
    """``value`` (JSON-like) as a Lua table constructor, as Argo CD hands objects to Lua."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid Lua string literal
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        fields = ", ".join(f"[{json.dumps(str(k))}] = {lua_literal(v)}" for k, v in value.items())
        return "{" + fields + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


RUNNERS = ("lua5.4", "gopher-lua")


def argocd_health(
    obj: dict[str, Any], script: Path = HEALTH_LUA, runner: str = "lua5.4"
) -> tuple[str, str]:
    """(status, message) the Argo CD health check returns for ``obj``, under ``runner``."""
    if runner == "gopher-lua":
        verdict = _helper(obj, "argocd-health", str(script))
        return str(verdict["status"]), str(verdict["message"])
    lua = shutil.which(LUA)
    if lua is None:
        raise AssertionError(f"{LUA} is not installed (apt-get install lua5.4; make system-deps)")
    result = subprocess.run(
        [lua, "-", str(script)],
        input=_RUNNER % lua_literal(obj),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, f"{script} failed: {result.stderr.strip()}"
    status, message = result.stdout.split("\n", 2)[:2]
    return status, message


def kstatus_binary() -> Path:
    """Build (once per source version) the kstatus helper; return its path.

    Cached outside the repo under <cache>/kstatus-helper/<hash of go.mod, go.sum, main.go>/.
    """
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (KSTATUS_SRC / name).read_bytes())
    out = cache_root() / "kstatus-helper" / digest.hexdigest()[:16]
    binary = out / "kstatus"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise AssertionError("Go >= 1.22 is needed to build the kstatus helper (tests/gitops)")
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            partial = out / "kstatus.partial"
            env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
            result = subprocess.run(
                [go, "build", "-trimpath", "-mod=readonly", "-o", str(partial), "."],
                cwd=KSTATUS_SRC,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            assert result.returncode == 0, (
                f"go build of the kstatus helper failed:\n{result.stderr}"
            )
            partial.rename(binary)
    return binary


def kstatus(obj: dict[str, Any], binary: Path | None = None) -> dict[str, Any]:
    """kstatus' verdict on ``obj``: {"status": "Current"|"InProgress"|..., "message": ...}."""
    return _helper(obj, binary=binary)


def _helper(obj: dict[str, Any], *args: str, binary: Path | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [str(binary or kstatus_binary()), *args],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, f"kstatus helper {args} failed: {result.stderr.strip()}"
    verdict: dict[str, Any] = json.loads(result.stdout)
    return verdict
