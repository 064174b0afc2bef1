"""Known vulnerabilities of every installed Python distribution, from PyPI's JSON API.

The venv is the truth: every distribution ``importlib.metadata`` sees (pinned
in pyproject.toml or pulled in by a pin), except local and editable installs
(PhoenixTwin itself), which are not on PyPI.

PyPI publishes the advisories of the Python Packaging Advisory Database (OSV
format) in its JSON API, the data pip-audit's default "pypi" service reads:

- ``/pypi/<name>/<version>/json`` lists the advisories affecting that version;
- ``/pypi/<name>/json`` lists those affecting the project's newest release.

Where the per-version endpoint answers, each distribution is audited at its
installed version ("exact"). Where only the project endpoint answers (the state
of the PhoenixTwin build machines, whose package mirror refuses per-version
JSON), a distribution installed at the newest release is still audited exactly;
an older one is checked against the newest release's advisories ("newest-only":
an advisory open in the newest release is assumed to affect the older one too,
but one fixed in between cannot be seen) and is listed as partly audited. OSV's
own API (api.osv.dev), pip-audit's other data source, does not resolve there.

Answers are cached under ~/.cache/phoenixtwin/audit for a few hours, so a
warm CI run asks PyPI nothing.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from scripts.audit.allowlist import Finding, canonical_package
from scripts.cache import cache_root

PYPI = os.environ.get("PHOENIX_AUDIT_PYPI_URL", "https://pypi.org/pypi").rstrip("/")
CACHE = Path(os.environ.get("PHOENIX_AUDIT_CACHE") or cache_root() / "audit")
CACHE_TTL_S = float(os.environ.get("PHOENIX_AUDIT_CACHE_HOURS", "6")) * 3600
TIMEOUT_S = 20.0
WORKERS = 6

Coverage = Literal["exact", "newest-only", "unaudited"]


@dataclass(frozen=True)
class Dist:
    name: str
    version: str


@dataclass(frozen=True)
class Audited:
    dist: Dist
    coverage: Coverage
    findings: tuple[Finding, ...]
    note: str = ""


class Unreachable(Exception):
    """PyPI's JSON API did not answer (network, DNS, a proxy's refusal)."""


def installed() -> tuple[list[Dist], list[str]]:
    """The venv's distributions from PyPI, and the names of local/editable ones skipped."""
    dists: dict[str, Dist] = {}
    local: list[str] = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        direct = dist.read_text("direct_url.json")
        if direct and ("dir_info" in json.loads(direct) or '"file:' in direct):
            local.append(name)
            continue
        dists[canonical_package(name)] = Dist(canonical_package(name), dist.version)
    # An editable install is also seen through the egg-info in the source tree.
    for name in local:
        dists.pop(canonical_package(name), None)
    return sorted(dists.values(), key=lambda d: d.name), sorted(local)


def _get(url: str) -> dict[str, Any] | None:
    """The JSON at ``url``, or None for a 404; Unreachable for anything but an answer."""
    cache = CACHE / "pypi" / (url.removeprefix(PYPI).strip("/").replace("/", "_") + ".json")
    if cache.is_file() and time.time() - cache.stat().st_mtime < CACHE_TTL_S:
        cached: dict[str, Any] | None = json.loads(cache.read_text())
        return cached
    if not url.startswith(("https://", "http://")):
        raise Unreachable(f"{url}: PHOENIX_AUDIT_PYPI_URL must be an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s), checked above
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:  # noqa: S310 - as above
            body: dict[str, Any] | None = json.loads(reply.read())
    except urllib.error.HTTPError as err:
        if err.code != 404:
            raise Unreachable(f"{url}: HTTP {err.code}") from err
        body = None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise Unreachable(f"{url}: {err}") from err
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(body))
    return body


def per_version_endpoint_works(probe: Dist) -> bool:
    """Does ``/pypi/<name>/<version>/json`` answer for a release that surely exists?"""
    try:
        return _get(f"{PYPI}/{probe.name}/{probe.version}/json") is not None
    except Unreachable:
        return False


def _findings(dist: Dist, vulns: Iterable[dict[str, Any]], where: str) -> tuple[Finding, ...]:
    return tuple(
        Finding(
            ecosystem="PyPI",
            package=dist.name,
            version=dist.version,
            id=str(v.get("id", "?")),
            aliases=tuple(v.get("aliases") or ()),
            fixed_in=tuple(v.get("fixed_in") or ()),
            summary=str(v.get("summary") or v.get("details") or "").strip(),
            where=where,
        )
        for v in vulns
        if not v.get("withdrawn")
    )


def audit_one(dist: Dist, per_version: bool) -> Audited:
    try:
        if per_version:
            exact = _get(f"{PYPI}/{dist.name}/{dist.version}/json")
            if exact is not None:
                return Audited(dist, "exact", _findings(dist, exact["vulnerabilities"], ""))
        project = _get(f"{PYPI}/{dist.name}/json")
    except Unreachable as err:
        return Audited(dist, "unaudited", (), str(err))
    if project is None:
        return Audited(dist, "unaudited", (), "not on PyPI")
    newest = str(project["info"]["version"])
    vulns = project.get("vulnerabilities") or []
    if newest == dist.version:
        return Audited(dist, "exact", _findings(dist, vulns, ""))
    where = f"reported for the newest release {newest}"
    return Audited(dist, "newest-only", _findings(dist, vulns, where), f"newest is {newest}")


def audit(dists: list[Dist]) -> tuple[list[Audited], bool]:
    """Every distribution audited as well as the reachable data allows; and per_version."""
    probe = next((d for d in dists if d.name == "pip"), dists[0])
    per_version = per_version_endpoint_works(probe)
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda d: audit_one(d, per_version), dists))
    return results, per_version
