"""Image archives without a builder: single-binary images (pause, CoreDNS) and reading layers.

``single_binary_image`` writes an OCI image layout archive that ``ctr images import`` accepts;
``layer_files`` reads chosen files out of a docker- or OCI-archive (as ``podman save``,
``buildah push`` and ``docker save`` write them), applying each layer's whiteouts, so an SBOM can
be made from exactly what is in the image.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _blob(tar: tarfile.TarFile, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    _add(tar, f"blobs/sha256/{digest}", data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def single_binary_image(
    out: Path, name: str, binary: Path, *, entrypoint: list[str], user: str, labels: dict[str, str]
) -> None:
    """An image holding one static binary at ``/<binary.name>``, named ``name`` (repo:tag)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, binary.name, binary.read_bytes(), mode=0o755)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": user, "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        config_desc = {"mediaType": OCI_CONFIG, **_blob(tar, json.dumps(config).encode())}
        layer_desc = {"mediaType": OCI_LAYER, **_blob(tar, layer_bytes)}
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }
        manifest_desc = {
            "mediaType": OCI_MANIFEST,
            **_blob(tar, json.dumps(manifest).encode()),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
            },
        }
        index = {"schemaVersion": 2, "manifests": [manifest_desc]}
        _add(tar, "index.json", json.dumps(index).encode())
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')


def _layer_paths(archive: tarfile.TarFile) -> list[str]:
    """Layer member names, bottom to top, for a docker-archive or an OCI archive."""
    names = archive.getnames()
    if "manifest.json" in names:
        manifest = json.load(_read(archive, "manifest.json"))
        return [str(p) for p in manifest[0]["Layers"]]
    index = json.load(_read(archive, "index.json"))
    desc = index["manifests"][0]
    blob = json.load(_read(archive, "blobs/" + desc["digest"].replace(":", "/")))
    if "manifests" in blob:  # an index inside the index
        blob = json.load(
            _read(archive, "blobs/" + blob["manifests"][0]["digest"].replace(":", "/"))
        )
    return ["blobs/" + layer["digest"].replace(":", "/") for layer in blob["layers"]]


def _read(archive: tarfile.TarFile, name: str) -> io.BufferedReader:
    member = archive.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is not a file in the image archive")
    return member  # type: ignore[return-value]


def layer_files(archive_path: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The content of each file ``wanted(path)`` selects, as the image's final filesystem has it."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive_path) as archive:
        for layer_name in _layer_paths(archive):
            with tarfile.open(fileobj=_read(archive, layer_name), mode="r|*") as layer:
                for member in layer:
                    path = member.name.removeprefix("./")
                    parent, _, base = path.rpartition("/")
                    if base == ".wh..wh..opq":
                        files = {p: d for p, d in files.items() if not p.startswith(parent + "/")}
                    elif base.startswith(".wh."):
                        gone = f"{parent}/{base[4:]}" if parent else base[4:]
                        files = {
                            p: d
                            for p, d in files.items()
                            if p != gone and not p.startswith(gone + "/")
                        }
                    elif member.isfile() and wanted(path):
                        data = layer.extractfile(member)
                        files[path] = data.read() if data else b""
    return files
