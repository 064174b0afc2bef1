"""A CycloneDX SBOM of an image: its Python distributions and its Debian packages.

Read from the image archive itself (``oci.layer_files``): every ``*.dist-info/METADATA`` of
the image's site-packages and ``/var/lib/dpkg/status``, so the SBOM lists exactly what the image
contains, works offline and never runs anything from the image. cyclonedx-python-lib (the
library behind cyclonedx-py) builds and serialises the document.
"""

from __future__ import annotations

import email.parser
import re
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from localcluster import oci

DIST_INFO = re.compile(r"(^|/)site-packages/[^/]+\.dist-info/METADATA$")
DPKG_STATUS = "var/lib/dpkg/status"


def _python_component(metadata: bytes) -> Component:
    msg = email.parser.BytesHeaderParser().parsebytes(metadata)
    name, version = str(msg["Name"]), str(msg["Version"])
    licence = msg.get("License-Expression") or msg.get("License")
    component = Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=version,
        purl=PackageURL("pypi", name=re.sub(r"[-_.]+", "-", name).lower(), version=version),
        bom_ref=f"pypi:{name}@{version}",
    )
    if licence and len(licence) < 100 and "\n" not in licence:
        component.licenses.add(LicenseExpression(licence))
    return component


def _debian_components(status: bytes) -> list[Component]:
    found = []
    for stanza in status.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" not in fields or not fields.get("Status", "").endswith(" installed"):
            continue
        name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture")
        qualifiers = {"arch": arch, "distro": "debian-12"} if arch else {"distro": "debian-12"}
        found.append(
            Component(
                type=ComponentType.LIBRARY,
                name=name,
                version=version,
                purl=PackageURL("deb", "debian", name, version, qualifiers),
                bom_ref=f"deb:{name}@{version}",
            )
        )
    return found


def image_sbom(archive: Path, image: str, digest: str) -> str:
    """The SBOM of the image in ``archive`` (named ``image``), as CycloneDX 1.6 JSON."""
    files = oci.layer_files(archive, lambda p: bool(DIST_INFO.search(p)) or p == DPKG_STATUS)
    found = [_python_component(data) for path, data in files.items() if path != DPKG_STATUS]
    if DPKG_STATUS in files:
        found += _debian_components(files[DPKG_STATUS])
    # The same distribution installed twice (say pip in the base and in the venv) is one entry.
    components = {str(c.bom_ref): c for c in found}.values()
    repo, _, tag = image.rpartition(":")
    bom = Bom()
    bom.metadata.component = Component(
        type=ComponentType.CONTAINER,
        name=repo,
        version=tag,
        bom_ref=image,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest.removeprefix("sha256:"))],
    )
    for component in sorted(components, key=lambda c: str(c.bom_ref)):
        bom.components.add(component)
    # The image holds every component (a flat graph: no package-to-package edges are claimed).
    bom.register_dependency(bom.metadata.component, list(components))
    return JsonV1Dot6(bom).output_as_string(indent=2)
