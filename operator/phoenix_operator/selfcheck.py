"""``python -m phoenix_operator.selfcheck``: what ``helm test`` runs in a Pod of the operator image.

From inside the cluster, through the chart's Service and the API server:

1. the operator's ``/healthz`` answers 200: kopf's liveness probe, so its event loop and
   watches are alive (the probe also reports how many twins it caches);
2. its ``/metrics`` carry the operator's own metric families, not just any exporter;
3. the API server serves ``phoenixtwins`` in ``phoenixtwin.io/v1alpha1`` with its status
   subresource (discovery, read with the Pod's ServiceAccount token: the CRD the chart
   installs is established).

Each check is retried a bounded number of times (the Service may have no endpoint for a
moment after an upgrade); the exit status is 0 when all pass, 1 with one line per failure.
Standard library only: it must run in the operator image without extra packages.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from phoenix_operator.api import GROUP, PLURAL, VERSION

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
METRIC_FAMILIES = ("phoenix_operator_reconciles_total", "phoenix_operator_api_writes_total")


class CheckFailed(Exception):
    """One check's reason for failing (no secret in it: URLs and statuses only)."""


def _get(url: str, *, timeout: float, token: str | None = None, ca: Path | None = None) -> str:
    request = urllib.request.Request(url)  # noqa: S310 - http(s) URLs from the chart
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = (
        ssl.create_default_context(cafile=str(ca)) if ca and url.startswith("https:") else None
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return str(response.read().decode())
    except OSError as err:  # URLError, HTTPError, timeouts, refused connections
        raise CheckFailed(f"{url}: {err}") from None


def check_health(url: str, timeout: float) -> str:
    body = _get(url, timeout=timeout)
    return f"{url}: healthy ({body.strip()[:200]})"


def check_metrics(url: str, timeout: float) -> str:
    body = _get(url, timeout=timeout)
    missing = [name for name in METRIC_FAMILIES if f"# TYPE {name}" not in body]
    if missing:
        raise CheckFailed(f"{url}: no operator metric families {missing}")
    return f"{url}: operator metrics present"


def check_crd_served(api_server: str, token_file: Path, ca_file: Path, timeout: float) -> str:
    try:
        token = token_file.read_text().strip()
    except OSError as err:
        raise CheckFailed(f"ServiceAccount token {token_file}: {err.strerror}") from None
    url = f"{api_server.rstrip('/')}/apis/{GROUP}/{VERSION}"
    try:
        resources = json.loads(_get(url, timeout=timeout, token=token, ca=ca_file))["resources"]
    except (ValueError, KeyError, TypeError):
        raise CheckFailed(f"{url}: not an APIResourceList") from None
    names = {r.get("name") for r in resources}
    if PLURAL not in names or f"{PLURAL}/status" not in names:
        raise CheckFailed(f"{url}: serves {sorted(names)}, not {PLURAL} with its status")
    return f"{url}: {PLURAL} served with the status subresource"


def retried(check: Callable[[], str], attempts: int, delay: float) -> str:
    for attempt in range(1, attempts + 1):
        try:
            return check()
        except CheckFailed as err:
            if attempt == attempts:
                raise
            print(f"attempt {attempt}/{attempts}: {err}", flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def in_cluster_api_server() -> str | None:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phoenix_operator.selfcheck")
    parser.add_argument("--health", required=True, help="the operator's /healthz URL")
    parser.add_argument("--metrics", required=True, help="the operator's /metrics URL")
    parser.add_argument(
        "--api-server", default=None, help="default: the in-cluster KUBERNETES_SERVICE_HOST/PORT"
    )
    parser.add_argument("--token-file", type=Path, default=SERVICE_ACCOUNT / "token")
    parser.add_argument("--ca-file", type=Path, default=SERVICE_ACCOUNT / "ca.crt")
    parser.add_argument("--attempts", type=int, default=30)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    api_server = args.api_server or in_cluster_api_server()
    checks: list[tuple[str, Callable[[], str]]] = [
        ("health", lambda: check_health(args.health, args.timeout)),
        ("metrics", lambda: check_metrics(args.metrics, args.timeout)),
    ]
    if api_server is None:
        print("crd: FAILED: no API server (KUBERNETES_SERVICE_HOST unset, no --api-server)")
        return 1
    checks.append(
        ("crd", lambda: check_crd_served(api_server, args.token_file, args.ca_file, args.timeout))
    )
    failed = 0
    for name, check in checks:
        try:
            print(f"{name}: ok: {retried(check, args.attempts, args.delay)}", flush=True)
        except CheckFailed as err:
            print(f"{name}: FAILED: {err}", flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
