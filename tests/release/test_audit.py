"""`make audit`: the allowlist's rules, PyPI's JSON API as it answers here, govulncheck's output.

PyPI is replaced by a local server speaking its JSON API (the per-version
endpoint refused, as the package mirror of these machines refuses it); the Go
vulnerability database, which these machines cannot reach, by a file:// database
in its published layout that the real govulncheck reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scripts.audit import allowlist, golang, pypi

TODAY = dt.date(2026, 11, 29)


def finding(id_: str = "PYSEC-2099-1", package: str = "Foo_Bar") -> allowlist.Finding:
    return allowlist.Finding("PyPI", package, "1.0", id_, ("CVE-2099-1",), ("1.1",), "bad")


def allow(**overrides: Any) -> allowlist.Allow:
    values: dict[str, Any] = {
        "id": "CVE-2099-1",
        "package": "foo-bar",
        "reason": "the affected parser is never imported",
        "expires": dt.date(2026, 12, 31),
    }
    values.update(overrides)
    return allowlist.Allow.model_validate(values)


def test_a_finding_without_an_entry_fails() -> None:
    [verdict] = allowlist.judge([finding()], allowlist.Allowlist(), TODAY)
    assert verdict.fails
    assert verdict.allow is None


def test_an_entry_matches_by_alias_and_normalised_package_name() -> None:
    listed = allowlist.Allowlist(allow=(allow(),))
    [verdict] = allowlist.judge([finding()], listed, TODAY)
    assert not verdict.fails
    assert verdict.allow == listed.allow[0]


def test_an_expired_entry_fails_from_its_expiry_date_on() -> None:
    listed = allowlist.Allowlist(allow=(allow(expires=TODAY),))
    [verdict] = allowlist.judge([finding()], listed, TODAY)
    assert verdict.expired
    assert verdict.fails
    [before] = allowlist.judge([finding()], listed, TODAY - dt.timedelta(days=1))
    assert not before.fails


def test_an_entry_for_another_package_does_not_allow_the_finding() -> None:
    listed = allowlist.Allowlist(allow=(allow(package="other"),))
    [verdict] = allowlist.judge([finding()], listed, TODAY)
    assert verdict.fails
    assert allowlist.unused(listed, [verdict]) == [listed.allow[0]]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('[[allow]]\nid = "CVE-1"\npackage = "x"\nreason = "because it is fine"\n', "expires"),
        ('[[allow]]\nid = "CVE-1"\npackage = "x"\nreason = "ok"\nexpires = 2027-01-01\n', "reason"),
        (
            '[[allow]]\nid = "CVE-1"\npackage = "x"\nreason = "long enough text"\n'
            'expires = "soon"\n',
            "expires",
        ),
        ("[[allow]\n", "audit-allowlist.toml"),
    ],
)
def test_a_malformed_allowlist_is_refused_with_the_field(
    tmp_path: Path, body: str, complaint: str
) -> None:
    path = tmp_path / "audit-allowlist.toml"
    path.write_text(body)
    with pytest.raises(allowlist.AllowlistError, match=complaint):
        allowlist.load(path)


def test_the_committed_allowlist_is_valid_and_unexpired() -> None:
    committed = allowlist.load(Path(__file__).resolve().parents[2] / "audit-allowlist.toml")
    today = dt.datetime.now(tz=dt.UTC).date()
    assert [entry.id for entry in committed.allow if entry.expires <= today] == []


# -- PyPI ---------------------------------------------------------------------------------


class FakePyPI(BaseHTTPRequestHandler):
    """PyPI's JSON API for two projects; per-version JSON refused with an empty 404."""

    VULN: ClassVar[dict[str, Any]] = {
        "id": "PYSEC-2099-7",
        "aliases": ["CVE-2099-7"],
        "fixed_in": ["3.0"],
        "summary": "remote code execution",
        "withdrawn": None,
    }
    WITHDRAWN: ClassVar[dict[str, Any]] = {**VULN, "id": "PYSEC-2099-8", "withdrawn": "2099"}
    PROJECTS: ClassVar[dict[str, dict[str, Any]]] = {
        "current": {"info": {"version": "1.0"}, "vulnerabilities": [VULN, WITHDRAWN]},
        "behind": {"info": {"version": "2.0"}, "vulnerabilities": [VULN]},
        "clean": {"info": {"version": "5.0"}, "vulnerabilities": []},
    }

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")  # pypi/<name>/json or pypi/<name>/<v>/json
        project = self.PROJECTS.get(parts[1]) if len(parts) == 3 else None
        body = json.dumps(project).encode() if project else b""
        self.send_response(200 if project else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def fake_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePyPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pypi"
    monkeypatch.setattr(pypi, "PYPI", url)
    monkeypatch.setattr(pypi, "CACHE", tmp_path / "cache")
    yield url
    server.shutdown()
    thread.join()


def test_pypi_audit_reports_what_it_could_see_and_how(fake_pypi: str) -> None:
    dists = [
        pypi.Dist("current", "1.0"),
        pypi.Dist("behind", "1.5"),
        pypi.Dist("clean", "5.0"),
        pypi.Dist("gone", "1.0"),
    ]
    results, per_version = pypi.audit(dists)
    assert not per_version
    by_name = {r.dist.name: r for r in results}
    assert by_name["current"].coverage == "exact"
    assert [f.id for f in by_name["current"].findings] == ["PYSEC-2099-7"]  # not the withdrawn
    assert by_name["behind"].coverage == "newest-only"
    assert by_name["behind"].note == "newest is 2.0"
    assert [f.version for f in by_name["behind"].findings] == ["1.5"]
    assert by_name["clean"].coverage == "exact"
    assert by_name["clean"].findings == ()
    assert (by_name["gone"].coverage, by_name["gone"].note) == ("unaudited", "not on PyPI")


def test_an_unreachable_pypi_leaves_every_distribution_unaudited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pypi, "PYPI", "http://127.0.0.1:9/pypi")  # discard port: refused
    monkeypatch.setattr(pypi, "CACHE", tmp_path / "cache")
    results, _ = pypi.audit([pypi.Dist("current", "1.0")])
    assert [r.coverage for r in results] == ["unaudited"]
    assert "Connection refused" in results[0].note


def test_the_venv_inventory_skips_the_editable_project() -> None:
    dists, local = pypi.installed()
    names = {d.name for d in dists}
    assert local == ["phoenixtwin"]
    assert "phoenixtwin" not in names
    assert {"grpcio", "pydantic", "detect-secrets"} <= names


# -- Go -----------------------------------------------------------------------------------

HELLO = """package main

import (
\t"fmt"
\t"os"
)

func main() { fmt.Fprintln(os.Stdout, fmt.Sprintf("hello %d", len(os.Args))) }
"""


def advisory(id_: str, package: str, symbol: str) -> dict[str, Any]:
    return {
        "schema_version": "1.3.1",
        "id": id_,
        "modified": "2026-11-01T00:00:00Z",
        "published": "2026-11-01T00:00:00Z",
        "aliases": [id_.replace("GO", "CVE")],
        "summary": f"{package}.{symbol} is vulnerable (a test entry)",
        "details": "test",
        "affected": [
            {
                "package": {"name": "stdlib", "ecosystem": "Go"},
                "ranges": [
                    {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.99.0"}]}
                ],
                "ecosystem_specific": {"imports": [{"path": package, "symbols": [symbol]}]},
            }
        ],
    }


@pytest.fixture(scope="module")
def vulndb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Go vulnerability database in vuln.go.dev's layout: one stdlib entry the binary
    calls (fmt.Sprintf) and one it does not (net/http)."""
    root = tmp_path_factory.mktemp("vulndb")
    (root / "index").mkdir()
    (root / "ID").mkdir()
    entries = [
        advisory("GO-2099-0001", "fmt", "Sprintf"),
        advisory("GO-2099-0002", "net/http", "Server.Serve"),
    ]
    (root / "index" / "db.json").write_text('{"modified": "2026-11-01T00:00:00Z"}')
    vulns = [{"id": e["id"], "modified": e["modified"], "fixed": "1.99.0"} for e in entries]
    (root / "index" / "modules.json").write_text(json.dumps([{"path": "stdlib", "vulns": vulns}]))
    for entry in entries:
        (root / "ID" / f"{entry['id']}.json").write_text(json.dumps(entry))
    return root


@pytest.fixture(scope="module")
def hello_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build the test binary (.ci/run requires it)")
    src = tmp_path_factory.mktemp("hello")
    (src / "go.mod").write_text("module example.invalid/hello\n\ngo 1.24\n")
    (src / "main.go").write_text(HELLO)
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", "hello", "."], cwd=src, env=env, check=True, timeout=300)
    return src / "hello"


def test_an_unreachable_vulnerability_database_is_reported_not_passed() -> None:
    report = golang.audit(db="file:///nonexistent/vulndb")
    assert not report.reachable
    assert "does not exist" in report.reason
    assert report.binaries == []


def test_govulncheck_findings_split_by_whether_the_binary_has_the_code(
    vulndb: Path, hello_binary: Path
) -> None:
    report = golang.audit(db=f"file://{vulndb}", binaries=[hello_binary])
    assert report.reachable
    assert report.errors == []
    [called] = report.findings
    assert (called.id, called.package, called.fixed_in) == ("GO-2099-0001", "stdlib", ("v1.99.0",))
    assert called.aliases == ("CVE-2099-0001",)
    assert called.where == "hello"
    assert [f.id for f in report.informational] == ["GO-2099-0002"]
