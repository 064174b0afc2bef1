"""Known vulnerabilities in the Go binaries we build, with govulncheck in binary mode.

The binaries are those of the build scripts listed in GO_BUILD_SCRIPTS (each
prints its cached output directory); every executable there that carries Go
build information is scanned with ``govulncheck -mode=binary``, which reads the
module versions and, where the symbol table allows, the functions the binary
contains. A vulnerability whose affected function is in the binary fails the
audit (govulncheck's own rule for a non-zero exit); one only in a module the
binary requires is listed as informational.

govulncheck needs the Go vulnerability database (vuln.go.dev, or GOVULNDB: any
URL govulncheck's -db accepts, such as a file:// mirror). The Go module proxy
serves govulncheck itself but not the database, so on a machine that reaches
only package registries the database is probed first and, when it does not
answer, nothing is built or installed and the audit says so loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.audit.allowlist import Finding
from scripts.cache import cache_root

REPO = Path(__file__).resolve().parents[2]
GOVULNCHECK_VERSION = "v1.9.0"
VULNDB = os.environ.get("GOVULNDB", "https://vuln.go.dev").rstrip("/")
GO_BUILD_SCRIPTS = ("scripts/build-control-plane.sh", "scripts/build-helm.sh")
CACHE_ROOT = cache_root()
SCAN_TIMEOUT_S = 300


@dataclass
class GoAudit:
    reachable: bool
    reason: str = ""
    binaries: list[Path] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # affected functions are present
    informational: list[Finding] = field(default_factory=list)  # only the module is required
    errors: list[str] = field(default_factory=list)


def database_reachable(db: str = VULNDB) -> tuple[bool, str]:
    """(True, "") if govulncheck can read ``db``; else (False, why)."""
    if db.startswith("file://"):
        index = Path(db.removeprefix("file://")) / "index" / "db.json"
        return (True, "") if index.is_file() else (False, f"{index} does not exist")
    try:
        with urllib.request.urlopen(f"{db}/index/db.json.gz", timeout=10):  # noqa: S310 - https
            return True, ""
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return False, f"{db} did not answer: {getattr(err, 'reason', err)}"


def govulncheck() -> Path:
    """govulncheck, installed with `go install` once per version into the tools cache."""
    gobin = CACHE_ROOT / "tools" / f"govulncheck-{GOVULNCHECK_VERSION}"
    binary = gobin / "govulncheck"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("govulncheck is not installed and Go is not there to install it")
    subprocess.run(  # noqa: S603 - a fixed argv
        [go, "install", f"golang.org/x/vuln/cmd/govulncheck@{GOVULNCHECK_VERSION}"],
        env={**os.environ, "GOBIN": str(gobin), "GOTOOLCHAIN": "local"},
        check=True,
        timeout=900,
    )
    return binary


def built_binaries(scripts: tuple[str, ...] = GO_BUILD_SCRIPTS) -> list[Path]:
    """The Go executables in each build script's output directory (built if missing)."""
    found: list[Path] = []
    go = shutil.which("go")
    for script in scripts:
        out = (
            subprocess.run(  # noqa: S603 - our own build script
                ["/bin/bash", str(REPO / script)], capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for path in sorted(Path(out).iterdir()):
            if path.is_file() and os.access(path, os.X_OK) and _is_go(go, path):
                found.append(path)
    return found


def _is_go(go: str | None, path: Path) -> bool:
    if go is None:
        return False
    probe = subprocess.run(  # noqa: S603 - `go version -m` on a file we built
        [go, "version", "-m", str(path)], capture_output=True, check=False
    )
    return probe.returncode == 0


def _messages(stream: str) -> Iterator[dict[str, Any]]:
    """govulncheck -format=json writes a sequence of JSON objects, not one array."""
    decoder = json.JSONDecoder()
    index = 0
    while True:
        while index < len(stream) and stream[index].isspace():
            index += 1
        if index >= len(stream):
            return
        message, index = decoder.raw_decode(stream, index)
        yield message


def scan(tool: Path, binary: Path, db: str = VULNDB) -> tuple[list[Finding], list[Finding]]:
    """(affecting, informational) findings of one binary."""
    result = subprocess.run(  # noqa: S603 - govulncheck on a file we built
        [str(tool), "-db", db, "-mode=binary", "-format=json", str(binary)],
        capture_output=True,
        text=True,
        check=False,
        timeout=SCAN_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(f"govulncheck {binary.name}: {result.stderr.strip()[-400:]}")
    advisories: dict[str, dict[str, Any]] = {}
    traces: dict[str, list[dict[str, Any]]] = {}
    fixed: dict[str, str] = {}
    for message in _messages(result.stdout):
        if "osv" in message:
            advisories[message["osv"]["id"]] = message["osv"]
        elif "finding" in message:
            finding = message["finding"]
            traces.setdefault(finding["osv"], []).extend(finding.get("trace") or [])
            fixed[finding["osv"]] = finding.get("fixed_version", "")
    affecting: list[Finding] = []
    informational: list[Finding] = []
    for osv_id, frames in sorted(traces.items()):
        advisory = advisories.get(osv_id, {})
        first = frames[0] if frames else {}
        item = Finding(
            ecosystem="Go",
            package=first.get("module", "?"),
            version=first.get("version", "?"),
            id=osv_id,
            aliases=tuple(advisory.get("aliases") or ()),
            fixed_in=(fixed[osv_id],) if fixed.get(osv_id) else (),
            summary=str(advisory.get("summary") or advisory.get("details") or ""),
            where=binary.name,
        )
        called = any(frame.get("function") for frame in frames)
        (affecting if called else informational).append(item)
    return affecting, informational


def audit(db: str = VULNDB, binaries: list[Path] | None = None) -> GoAudit:
    reachable, reason = database_reachable(db)
    if not reachable:
        return GoAudit(reachable=False, reason=reason)
    report = GoAudit(reachable=True)
    try:
        tool = govulncheck()
        report.binaries = built_binaries() if binaries is None else binaries
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        report.errors.append(str(err))
        return report
    for binary in report.binaries:
        try:
            affecting, informational = scan(tool, binary, db)
        except (RuntimeError, subprocess.SubprocessError, json.JSONDecodeError) as err:
            report.errors.append(str(err))
            continue
        report.findings += affecting
        report.informational += informational
    return report
