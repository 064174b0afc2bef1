"""What every benchmark reports: a measured figure beside its baseline, as a ratio to a goal."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One line of the report: ``value`` measured next to ``baseline`` in the same run."""

    area: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def line(self) -> str:
        text = f"{self.area:<12} {self.name:<44} {self.value:>10.3f} {self.unit:<8}"
        if self.baseline is not None:
            text += f" vs {self.baseline_name} {self.baseline:.3f} {self.unit}"
            if self.ratio is not None:
                text += f" = {self.ratio:.2f}x"
        if self.goal:
            text += f"  (goal {self.goal})"
        return text


def percentile(samples: Sequence[float], pct: float) -> float:
    """The pct-th percentile (0-100) of samples, by linear interpolation."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    if pct <= 0:
        return ordered[0]
    if pct >= 100:
        return ordered[-1]
    return cut[int(pct) - 1]
