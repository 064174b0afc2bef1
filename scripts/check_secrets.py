"""No secrets in the tree: everything detect-secrets flags is in .secrets.baseline, audited.

detect-secrets (Yelp) runs offline with its built-in detectors (AWS, GitHub,
private keys, JWTs, high-entropy strings, "password = ..." keywords, ...). A
finding passes only if the committed baseline holds it (same file, type and
hashed value) *and* a person marked it ``"is_secret": false`` with
``detect-secrets audit .secrets.baseline``: the fake keys of test fixtures are
listed one by one there, never excluded by path. The check fails on

- a finding missing from the baseline (a new secret, or a new fake one to audit),
- a baseline entry not audited, or audited as a real secret.

Baseline entries the scan no longer finds are reported (refresh the baseline)
but do not fail. Line numbers are not compared, so edits elsewhere in a file
need no baseline refresh.

Scanning every file takes ~20 s of CPU, so results are cached per file content
(and detect-secrets version and settings) under ``secrets/`` in the cache root (scripts/cache.py);
a warm run rescans only what changed.

    python -m scripts.check_secrets        # the check `make lint` runs
    make secrets-baseline                  # refresh the baseline, keeping audit marks
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect_secrets.__version__ import VERSION
from detect_secrets.core import baseline as ds_baseline
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import get_settings

from scripts.cache import cache_root

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / ".secrets.baseline"
CACHE = Path(os.environ.get("PHOENIX_SECRETS_CACHE") or cache_root() / "secrets")


@dataclass(frozen=True, order=True)
class Finding:
    filename: str
    type: str
    hashed_secret: str
    line_number: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.filename, self.type, self.hashed_secret)

    def __str__(self) -> str:
        return f"{self.filename}:{self.line_number}: {self.type}"


def tree_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files, relative to the repository root."""
    git = shutil.which("git")
    if git is None:
        raise SystemExit("check_secrets needs git to list the repository's files")
    listed = subprocess.run(  # noqa: S603 - a fixed argv
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = sorted({name for name in listed.split("\0") if name})
    return [name for name in names if (REPO / name).is_file() and not (REPO / name).is_symlink()]


def cache_key(settings_digest: str, name: str) -> str:
    digest = hashlib.sha256(settings_digest.encode())
    digest.update(name.encode() + b"\0")
    digest.update((REPO / name).read_bytes())
    return digest.hexdigest()


def scan(names: list[str]) -> list[Finding]:
    """detect-secrets' findings in ``names``, from the cache where the content is unchanged."""
    settings = json.dumps(get_settings().json(), sort_keys=True)
    settings_digest = f"{VERSION}\0{settings}"
    cache_dir = CACHE / hashlib.sha256(settings_digest.encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: cache_key(settings_digest, name) for name in names}
    cached: dict[str, list[dict[str, Any]]] = {}
    for name, key in keys.items():
        path = cache_dir / f"{key}.json"
        if path.is_file():
            cached[name] = json.loads(path.read_text())
    missing = [name for name in names if name not in cached]
    if missing:
        # Relative names (the cwd is the repository), so the baseline's path filters match.
        fresh = SecretsCollection()
        fresh.scan_files(*missing)
        for name in missing:
            cached[name] = [
                {
                    "type": s.type,
                    "hashed_secret": s.secret_hash,
                    "line_number": s.line_number,
                }
                for s in sorted(fresh[name], key=lambda s: (s.line_number, s.type))
            ]
            (cache_dir / f"{keys[name]}.json").write_text(json.dumps(cached[name]))
    return sorted(Finding(filename=name, **item) for name in names for item in cached[name])


def main() -> int:
    data = ds_baseline.load_from_file(str(BASELINE))
    # Configures detect-secrets' plugins and filters from the baseline, as its own CLI does.
    recorded = ds_baseline.load(data, str(BASELINE))
    audited: dict[tuple[str, str, str], bool | None] = {}
    for filename, secret in recorded:
        key = (filename, secret.type, secret.secret_hash)
        audited[key] = getattr(secret, "is_secret", None)

    names = tree_files()
    findings = scan(names)
    new = [f for f in findings if f.key not in audited]
    unaudited = [f for f in findings if f.key in audited and audited[f.key] is None]
    real = [f for f in findings if f.key in audited and audited[f.key] is True]
    found = {f.key for f in findings}
    stale = sorted(key for key in audited if key not in found)

    for finding in new:
        print(f"NEW SECRET? {finding} (not in .secrets.baseline)")
    for finding in unaudited:
        print(f"UNAUDITED   {finding} (run: detect-secrets audit .secrets.baseline)")
    for finding in real:
        print(f"REAL SECRET {finding} (audited as a secret: remove it and rotate it)")
    for filename, kind, _ in stale:
        print(f"stale baseline entry: {filename}: {kind} (refresh: make secrets-baseline)")
    passed = sum(1 for f in findings if audited.get(f.key) is False)
    print(
        f"secrets: {len(names)} files scanned, {len(findings)} findings: {passed} audited as "
        f"not secret, {len(new)} new, {len(unaudited)} unaudited, {len(real)} real"
    )
    if new or unaudited or real:
        print(
            "A real secret must leave the tree (and be rotated). A fake one (a test fixture) "
            "goes into the baseline: `make secrets-baseline`, then "
            "`.venv/bin/detect-secrets audit .secrets.baseline` and mark it not a secret.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    raise SystemExit(main())
