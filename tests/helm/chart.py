"""The helm binary and the chart, for tests/helm and tests/e2e/test_helm.py.

helm is built from its Go module by scripts/build-helm.sh into a version-keyed cache outside
the repo (first run only). That build does not stamp helm's default Kubernetes version, so
client-only commands (template, lint) are given KUBE_VERSION explicitly.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "phoenixtwin"
CI_VALUES = CHART / "ci"
BUILD_HELM = REPO / "scripts" / "build-helm.sh"
# The control plane's version (scripts/lib/k8s-module.sh); the chart needs >= 1.30.
KUBE_VERSION = "1.34.4"


@cache
def helm_binary() -> Path:
    result = subprocess.run(
        ["bash", str(BUILD_HELM)], stdout=subprocess.PIPE, text=True, check=False, timeout=1800
    )
    assert result.returncode == 0, f"{BUILD_HELM} failed with exit code {result.returncode}"
    binary = Path(result.stdout.strip().splitlines()[-1]) / "helm"
    assert binary.exists(), f"{BUILD_HELM} printed {result.stdout!r}, but {binary} is missing"
    return binary


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}"
        )
    return result


def template_args(
    *extra: str, release: str = "phx", namespace: str = "phoenix-system"
) -> list[str]:
    """`helm template` of the chart for the control plane's Kubernetes version."""
    return [
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *extra,
    ]


def render(
    *extra: str, release: str = "phx", namespace: str = "phoenix-system"
) -> list[dict[str, Any]]:
    """`helm template` (with the control plane's Kubernetes version) as a list of objects."""
    out = helm(*template_args(*extra, release=release, namespace=namespace)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
