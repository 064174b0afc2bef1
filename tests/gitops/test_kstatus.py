"""kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute) agrees with the twin's status.

Flux, `kubectl wait` tooling and cli-utils appliers judge custom resources by these rules:
observedGeneration behind metadata.generation is InProgress, and a Ready condition decides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.gitops import samples
from tests.gitops.tools import kstatus, kstatus_binary


@pytest.fixture(scope="module")
def helper() -> Path:
    return kstatus_binary()


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (samples.ready, "Current"),
        (samples.stale, "InProgress"),
        (samples.progressing, "InProgress"),
        (samples.degraded, "InProgress"),
        # kstatus cannot know a controller will write a status: docs/gitops.md says so and
        # shows a Flux CEL health check that waits for Ready instead.
        (samples.no_status, "Current"),
    ],
    ids=["ready", "stale-generation", "progressing", "degraded", "no-status"],
)
def test_kstatus_of_operator_statuses(
    helper: Path, sample: Callable[[], dict[str, Any]], expected: str
) -> None:
    verdict = kstatus(sample(), helper)
    assert verdict["status"] == expected, verdict


def test_stale_generation_message(helper: Path) -> None:
    verdict = kstatus(samples.stale(), helper)
    assert verdict["message"] == (
        "PhoenixTwin generation is 4, but latest observed generation is 3"
    )


def test_helper_rejects_garbage(helper: Path) -> None:
    with pytest.raises(AssertionError, match="not a Kubernetes object"):
        kstatus({"no": "kind"}, helper)
