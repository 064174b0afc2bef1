"""Image archives and SBOMs, on archives made here (no builder needed)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from localcluster import images, oci, sbom

METADATA = b"Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 1.2.3\nLicense: MIT\n\nbody\n"
STATUS = (
    b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n\n"
    b"Package: removed\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n"
)


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _docker_archive(path: Path, layers: list[dict[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        names = []
        for i, files in enumerate(layers):
            data = _layer(files)
            info = tarfile.TarInfo(f"layer{i}.tar")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            names.append(info.name)
        manifest = json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": names}])
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest.encode()))


SITE = "opt/venv/lib/python3.11/site-packages"


def test_layer_files_applies_whiteouts(tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    _docker_archive(
        archive,
        [
            {f"{SITE}/a-1.dist-info/METADATA": b"a", f"{SITE}/b-1.dist-info/METADATA": b"b"},
            {f"{SITE}/.wh.a-1.dist-info": b"", f"{SITE}/b-1.dist-info/METADATA": b"b2"},
        ],
    )
    files = oci.layer_files(archive, lambda p: p.endswith("METADATA"))
    assert files == {f"{SITE}/b-1.dist-info/METADATA": b"b2"}


def test_sbom_lists_python_and_debian_packages(tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    _docker_archive(
        archive,
        [{sbom.DPKG_STATUS: STATUS}, {f"{SITE}/demo_pkg-1.2.3.dist-info/METADATA": METADATA}],
    )
    doc = json.loads(
        sbom.image_sbom(archive, "ghcr.io/x/phoenix-tools:0.1.0", "sha256:" + "0" * 64)
    )
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.6"
    assert doc["metadata"]["component"]["name"] == "ghcr.io/x/phoenix-tools"
    assert doc["metadata"]["component"]["version"] == "0.1.0"
    purls = sorted(c["purl"] for c in doc["components"])
    assert purls == [
        "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12",
        "pkg:pypi/demo-pkg@1.2.3",
    ]


def test_single_binary_image_is_an_oci_layout_with_its_name(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")
    archive = tmp_path / "pause.tar"
    oci.single_binary_image(
        archive, "example.local/pause:1", binary, entrypoint=["/pause"], user="65535", labels={}
    )
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        assert "oci-layout" in tar.getnames()
    annotations = index["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "example.local/pause:1"
    assert oci.layer_files(archive, lambda p: True) == {"pause": b"\x7fELF not really"}


def test_source_hash_changes_with_the_inputs_and_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "operator").mkdir()
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        (tmp_path / name).write_text("x")
    (tmp_path / "pyproject.toml").write_text('[project]\nversion = "0.1.0"\n')
    (tmp_path / "images" / "a.py").write_text("one")
    monkeypatch.setattr(images, "REPO", tmp_path)
    first = images.source_hash("tools", "base:1")
    assert images.source_hash("tools", "base:1") == first
    assert images.source_hash("memory", "base:1") != first
    assert images.source_hash("tools", "base:2") != first
    (tmp_path / "images" / "__pycache__").mkdir()
    (tmp_path / "images" / "__pycache__" / "a.pyc").write_text("noise")
    assert images.source_hash("tools", "base:1") == first
    (tmp_path / "images" / "a.py").write_text("two")
    assert images.source_hash("tools", "base:1") != first
