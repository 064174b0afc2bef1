"""The operator's ``checksum/rbac`` annotation is a string for every install, whatever its hash.

The annotation holds the first 16 hex digits of a hash of the chart's rendered RBAC, which
covers the release namespace. When all 16 happen to be decimal digits (about 1 install in
1,850), an unquoted value is a YAML integer and the API server refuses the Deployment
("expected string"). A random namespace almost never hits that, so the test finds one that
does: it renders the RBAC template once, through a probe added to a copy of the chart, with
a placeholder namespace, hashes it with each candidate namespace in place of the placeholder,
and renders the real chart with the first all-digit one.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

from tests.helm.chart import CHART, helm, one, render, template_args

PLACEHOLDER = "checksum-probe-namespace"
# A ConfigMap holding the very string the Deployment's annotation hashes.
PROBE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: rbac-probe
data:
  rbac: {{ include (print $.Template.BasePath "/rbac.yaml") . | b64enc | quote }}
"""
CANDIDATES = 100_000  # ~1 in 1,850 qualifies: finding none would mean the hash input changed


def _rendered_rbac(tmp_path: Path) -> str:
    chart = tmp_path / "phoenixtwin"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-rbac-probe.yaml").write_text(PROBE)
    args = template_args(namespace=PLACEHOLDER)
    args[args.index(str(CHART))] = str(chart)
    out = helm(*args, "--show-only", "templates/zz-rbac-probe.yaml").stdout
    encoded = out.split('rbac: "', 1)[1].split('"', 1)[0]
    return base64.b64decode(encoded).decode()


def _all_digit_namespace(rbac: str) -> str:
    assert PLACEHOLDER in rbac, "the RBAC no longer names the namespace: nothing to vary"
    for i in range(CANDIDATES):
        namespace = f"ns-{i}"
        digest = hashlib.sha256(rbac.replace(PLACEHOLDER, namespace).encode()).hexdigest()
        if digest[:16].isdigit():
            return namespace
    raise AssertionError(f"no namespace among {CANDIDATES} gives an all-digit checksum")


def test_an_all_digit_rbac_checksum_is_still_a_string(tmp_path: Path) -> None:
    namespace = _all_digit_namespace(_rendered_rbac(tmp_path))
    objects = render(namespace=namespace)
    deployment = one(objects, "Deployment")
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/rbac"]
    assert isinstance(checksum, str), f"checksum/rbac is a YAML {type(checksum).__name__}"
    # The case this test exists for was really rendered (the probe matched the chart's hash).
    assert len(checksum) == 16, checksum
    assert checksum.isdigit(), checksum
