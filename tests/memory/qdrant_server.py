"""A real Qdrant server for tests: the binary from QDRANT_BIN, or a running one at QDRANT_URL.

- ``QDRANT_URL`` (gRPC, e.g. http://127.0.0.1:6334) points at a server that is
  already running; ``QDRANT_REST_URL`` names its REST port (default: the gRPC
  port - 1) and ``QDRANT_SNAPSHOTS_DIR`` its snapshots directory (restore tests
  need it).
- Otherwise ``QDRANT_BIN`` (default ``../shared/bin/qdrant`` beside the repo)
  is started on free ports with its storage in a temporary directory, once per
  test session, and stopped at the end.
- With neither, the fixture fails loudly, naming both settings: these tests
  exist to run on the real engine (qdrant-client's local mode ignores payload
  indexes and is not the engine).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO.parent / "shared" / "bin" / "qdrant"
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class QdrantEndpoint:
    grpc_url: str
    rest_url: str
    snapshots_dir: Path | None
    pid: int | None = (
        None  # the server process, when this fixture started it (benchmarks read its CPU time)
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready(rest_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{rest_url}/readyz", timeout=2) as response:  # noqa: S310 - a local http URL we built
            return bool(response.status == 200)
    except OSError:
        return False


def binary() -> Path | None:
    configured = os.environ.get("QDRANT_BIN")
    path = Path(configured) if configured else DEFAULT_BIN
    return path if path.is_file() and os.access(path, os.X_OK) else None


@contextmanager
def qdrant_endpoint(grpc_port: int | None = None) -> Iterator[QdrantEndpoint]:
    """The server to test against; ``grpc_port`` starts the binary on that port (tests that
    stop a server and start it again where their clients already point), never QDRANT_URL's."""
    url = os.environ.get("QDRANT_URL")
    if url and grpc_port is None:
        parts = urlsplit(url)
        rest = os.environ.get("QDRANT_REST_URL") or (
            f"{parts.scheme}://{parts.hostname}:{(parts.port or 6334) - 1}"
        )
        snapshots_dir = os.environ.get("QDRANT_SNAPSHOTS_DIR")
        yield QdrantEndpoint(url, rest, Path(snapshots_dir) if snapshots_dir else None)
        return
    path = binary()
    if path is None:
        raise RuntimeError(
            "No Qdrant server for the tests: set QDRANT_BIN to a Qdrant server binary "
            f"(default {DEFAULT_BIN}, not found) or QDRANT_URL to a running server's gRPC URL"
        )
    with tempfile.TemporaryDirectory(prefix="phoenix-qdrant-") as tmp:
        http, grpc_port = _free_port(), grpc_port or _free_port()
        storage, snapshots = Path(tmp) / "storage", Path(tmp) / "snapshots"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "QDRANT__SERVICE__HOST": "127.0.0.1",
            "QDRANT__SERVICE__HTTP_PORT": str(http),
            "QDRANT__SERVICE__GRPC_PORT": str(grpc_port),
            "QDRANT__STORAGE__STORAGE_PATH": str(storage),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(snapshots),
            "QDRANT__TELEMETRY_DISABLED": "true",
            "QDRANT__LOG_LEVEL": "WARN",
        }
        log = (Path(tmp) / "qdrant.log").open("w")
        process = subprocess.Popen(
            [str(path)], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
        )
        rest = f"http://127.0.0.1:{http}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _ready(rest):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (Path(tmp) / "qdrant.log").read_text()[-2000:]
                    raise RuntimeError(f"Qdrant at {path} did not become ready:\n{tail}")
                time.sleep(0.2)
            yield QdrantEndpoint(f"http://127.0.0.1:{grpc_port}", rest, snapshots, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()
            shutil.rmtree(storage, ignore_errors=True)
