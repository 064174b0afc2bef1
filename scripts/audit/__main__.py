"""`make audit`: known vulnerabilities in the Python venv and the Go binaries we build.

Exit status 1 when a vulnerability has no allowlist entry, when its entry has
expired, or when audit-allowlist.toml is malformed. A data source that cannot
be reached is reported loudly in a banner but does not fail the audit, because
on the PhoenixTwin build machines the Go vulnerability database never resolves
and PyPI answers for the newest releases only; set PHOENIX_AUDIT_STRICT=1
(on a machine that reaches both) to fail on anything left unaudited.

    python -m scripts.audit [--python-only | --go-only]
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import textwrap
from pathlib import Path

from scripts.audit import allowlist, golang, pypi

REPO = Path(__file__).resolve().parents[2]
ALLOWLIST = REPO / "audit-allowlist.toml"
WIDTH = 100


def banner(lines: list[str]) -> None:
    print("!" * WIDTH)
    for line in lines:
        for wrapped in textwrap.wrap(line, WIDTH - 2, subsequent_indent="  "):
            print(f"! {wrapped}")
    print("!" * WIDTH)


def python_part() -> tuple[list[allowlist.Finding], list[str]]:
    dists, local = pypi.installed()
    results, per_version = pypi.audit(dists)
    counts = {c: sum(1 for r in results if r.coverage == c) for c in ("exact", "newest-only")}
    unaudited = [r for r in results if r.coverage == "unaudited"]
    older = [r for r in results if r.coverage == "newest-only"]
    print(
        f"python: {len(dists)} distributions from PyPI ({len(local)} local skipped: "
        f"{', '.join(local)}); per-version advisories: "
        f"{'available' if per_version else 'NOT available here'}"
    )
    print(
        f"python: {counts['exact']} audited at their installed version, "
        f"{counts['newest-only']} older than the newest release checked against its "
        f"advisories, {len(unaudited)} unaudited"
    )
    gaps: list[str] = []
    if older:
        gaps.append(
            f"{len(older)} Python distributions are older than their newest release and "
            "PyPI's per-version advisories are not reachable here: an advisory fixed "
            "between the pin and the newest release cannot be seen. Older pins: "
            + ", ".join(f"{r.dist.name} {r.dist.version} ({r.note})" for r in older)
        )
    if unaudited:
        gaps.append(
            f"{len(unaudited)} Python distributions NOT audited: "
            + "; ".join(f"{r.dist.name} {r.dist.version}: {r.note}" for r in unaudited)
        )
    return [f for r in results for f in r.findings], gaps


def go_part() -> tuple[list[allowlist.Finding], list[str]]:
    report = golang.audit()
    if not report.reachable:
        print(f"go: govulncheck NOT run: the Go vulnerability database: {report.reason}")
        return [], [
            "Go binaries NOT audited: govulncheck needs the Go vulnerability database "
            f"({golang.VULNDB}), which this machine cannot reach ({report.reason}). "
            f"Not scanned: the binaries of {', '.join(golang.GO_BUILD_SCRIPTS)}. "
            "Set GOVULNDB to a reachable mirror (https:// or file://) to scan them."
        ]
    print(
        f"go: govulncheck {golang.GOVULNCHECK_VERSION} scanned {len(report.binaries)} "
        f"binaries: {', '.join(b.name for b in report.binaries)}"
    )
    for item in report.informational:
        print(f"  info (module required, affected code not in the binary): {item.describe()}")
    gaps = [f"govulncheck failed: {error}" for error in report.errors]
    return report.findings, gaps


def main(argv: list[str]) -> int:
    strict = os.environ.get("PHOENIX_AUDIT_STRICT", "") == "1"
    try:
        allowed = allowlist.load(ALLOWLIST)
    except allowlist.AllowlistError as err:
        print(f"audit: {err}", file=sys.stderr)
        return 1
    findings: list[allowlist.Finding] = []
    gaps: list[str] = []
    if "--go-only" not in argv:
        found, missing = python_part()
        findings += found
        gaps += missing
    if "--python-only" not in argv:
        found, missing = go_part()
        findings += found
        gaps += missing

    verdicts = allowlist.judge(findings, allowed, dt.datetime.now(tz=dt.UTC).date())
    for verdict in verdicts:
        if verdict.allow is None:
            state = "VULNERABLE"
        elif verdict.expired:
            state = f"EXPIRED ALLOWLIST ENTRY ({verdict.allow.expires})"
        else:
            state = f"allowed until {verdict.allow.expires}: {verdict.allow.reason}"
        print(f"  {state}: {verdict.finding.describe()}")
    for entry in allowlist.unused(allowed, verdicts):
        print(f"  unused allowlist entry (remove it): {entry.id} in {entry.package}")
    failing = [v for v in verdicts if v.fails]
    if gaps:
        banner(["AUDIT INCOMPLETE: data this machine could not reach", *gaps])
    print(
        f"audit: {len(findings)} known vulnerabilities, {len(findings) - len(failing)} "
        f"allowed, {len(failing)} failing; {len(gaps)} gaps"
        + (" (PHOENIX_AUDIT_STRICT=1: gaps fail)" if strict and gaps else "")
    )
    return 1 if failing or (strict and gaps) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
