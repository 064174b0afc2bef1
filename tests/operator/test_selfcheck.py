"""The helm test's check, against real HTTP servers on 127.0.0.1 (the e2e runs it against the
real operator and API server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import generate_latest

import phoenix_operator.metrics  # noqa: F401 - registers the operator's metric families
from phoenix_operator import selfcheck

Routes = dict[str, tuple[int, str]]


@pytest.fixture
def server() -> Iterator[tuple[str, Routes]]:
    routes: Routes = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, "not found"))
            if self.path.startswith("/apis/") and self.headers["Authorization"] != "Bearer t0k":
                status, body = 401, "Unauthorized"
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    token = tmp_path / "token"
    token.write_text("t0k\n")
    code = selfcheck.main(
        [
            f"--health={base}/healthz",
            f"--metrics={base}/metrics",
            f"--api-server={base}",
            f"--token-file={token}",
            f"--ca-file={tmp_path / 'unused-for-http'}",
            "--attempts=2",
            "--delay=0",
            "--timeout=2",
        ]
    )
    return code, capsys.readouterr().out


SERVED = json.dumps(
    {
        "kind": "APIResourceList",
        "resources": [{"name": "phoenixtwins"}, {"name": "phoenixtwins/status"}],
    }
)


def test_a_live_operator_and_a_served_crd_pass(
    server: tuple[str, Routes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, routes = server
    routes["/healthz"] = (200, '{"twins": 0}')
    routes["/metrics"] = (200, generate_latest().decode())
    routes["/apis/phoenixtwin.io/v1alpha1"] = (200, SERVED)
    code, out = run(base, tmp_path, capsys)
    assert code == 0, out
    assert out.count(": ok: ") == 3


def test_each_failure_is_named_and_fails_the_test(
    server: tuple[str, Routes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, routes = server
    routes["/healthz"] = (500, "probe failed")
    routes["/metrics"] = (200, "# TYPE process_cpu_seconds_total counter\n")  # not ours
    routes["/apis/phoenixtwin.io/v1alpha1"] = (
        200,
        json.dumps({"resources": [{"name": "phoenixtwins"}]}),  # no status subresource
    )
    code, out = run(base, tmp_path, capsys)
    assert code == 1
    assert "health: FAILED" in out
    assert "metrics: FAILED" in out
    assert "no operator metric families" in out
    assert "crd: FAILED" in out
    assert "attempt 1/2" in out  # retried, boundedly


def test_a_missing_crd_or_token_fails(
    server: tuple[str, Routes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, routes = server
    routes["/healthz"] = (200, "{}")
    routes["/metrics"] = (200, generate_latest().decode())
    code, out = run(base, tmp_path, capsys)  # /apis/... answers 404: the CRD is not installed
    assert code == 1
    assert "crd: FAILED" in out
    assert "404" in out
