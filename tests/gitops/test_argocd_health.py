"""The Argo CD health check (helm/phoenixtwin/files/argocd-health.lua) on sample statuses.

Every case runs under lua5.4 and under gopher-lua (Lua 5.1, the VM Argo CD embeds).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.gitops import samples
from tests.gitops.tools import HEALTH_LUA, REPO, RUNNERS, argocd_health


@pytest.fixture(params=RUNNERS)
def runner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (samples.ready, "Healthy"),
        (samples.progressing, "Progressing"),
        (samples.degraded, "Degraded"),
        (samples.stale, "Progressing"),
        (samples.no_status, "Progressing"),
        (samples.suspended, "Suspended"),
    ],
    ids=["ready", "progressing", "degraded", "stale-generation", "no-status", "suspended"],
)
def test_health_of_operator_statuses(
    sample: Callable[[], dict[str, Any]], expected: str, runner: str
) -> None:
    status, message = argocd_health(sample(), runner=runner)
    assert status == expected, message
    assert message
    assert message != "nil"


def test_messages_say_why(runner: str) -> None:
    assert argocd_health(samples.degraded(), runner=runner)[1] == (
        "QdrantUnreachable: Qdrant at http://q:6334 did not answer"
    )
    assert "memory" in argocd_health(samples.progressing(), runner=runner)[1]
    assert "generation 4" in argocd_health(samples.stale(), runner=runner)[1]


def test_a_condition_of_an_older_generation_is_ignored(runner: str) -> None:
    # status.observedGeneration is current but Ready=True was written for generation 1.
    obj = samples.twin(
        2,
        {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "X", "observedGeneration": 1}
            ],
        },
    )
    assert argocd_health(obj, runner=runner)[0] == "Progressing"


@pytest.mark.parametrize(
    "status",
    [{}, {"observedGeneration": 1}, {"observedGeneration": 1, "conditions": []}],
    ids=["empty", "no-conditions", "empty-conditions"],
)
def test_partial_statuses_are_progressing(status: dict[str, Any], runner: str) -> None:
    assert argocd_health(samples.twin(1, status), runner=runner)[0] == "Progressing"


def test_degraded_wins_over_ready(runner: str) -> None:
    obj = samples.twin(
        1,
        {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Ready", "status": "True", "observedGeneration": 1},
                {"type": "Degraded", "status": "True", "reason": "R", "message": "m"},
            ],
        },
    )
    assert argocd_health(obj, runner=runner) == ("Degraded", "R: m")


def test_docs_ship_the_same_script() -> None:
    """docs/gitops.md's argocd-cm carries helm/phoenixtwin/files/argocd-health.lua verbatim."""
    doc = (REPO / "docs" / "gitops.md").read_text()
    key = "resource.customizations.health.phoenixtwin.io_PhoenixTwin"
    configmaps = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
        if "kind: ConfigMap" in block and key in block
    ]
    assert configmaps, f"docs/gitops.md has no argocd-cm ConfigMap with {key}"
    assert configmaps[0]["metadata"]["name"] == "argocd-cm"
    assert configmaps[0]["data"][key] == HEALTH_LUA.read_text(), (
        "docs/gitops.md and helm/phoenixtwin/files/argocd-health.lua differ"
    )
