"""Whether a change helps: the difference to its baseline, paired by training seed and by
latent seed, with a 95% paired t interval over the training seeds.

Each cell's score is the mean over the same latent seeds for every recipe (genlab-eval's
`repeats`), so a seed's difference is the mean of the per-latent-seed differences, and the
latent-draw noise is averaged inside it. The interval is Student's t over the training
seeds: they are the independent units, and with three of them a bootstrap would draw from
only ten distinct resamples and give an interval far narrower than its nominal 95%. The t
interval is wide with three seeds, and that width is the honest statement of what three
seeds can tell.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from scipy import stats

from genlab.evaluation.metric_registry import metric

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    """A recipe against its baseline on one metric (recipe - baseline, per training seed)."""

    differences: list[float]
    low: float | None  # the interval's ends; None with fewer than two seeds
    high: float | None
    verdict: str

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.differences) if self.differences else None


def per_latent_seed(scores: dict[str, Any], key: str) -> dict[Any, float]:
    """{latent seed: value} of one genlab-eval result (one entry when it scored one seed)."""
    per_seed = scores.get("per_seed") or {}
    if key in per_seed:
        return dict(zip(per_seed["seed"], per_seed[key], strict=True))
    value = scores.get(key)
    return {} if value is None else {None: value}


def seed_difference(cell: dict[str, Any], base: dict[str, Any], key: str) -> float | None:
    """The mean over the latent seeds both share of (cell - base) on the final weights."""
    mine = per_latent_seed(cell.get("final") or {}, key)
    theirs = per_latent_seed(base.get("final") or {}, key)
    shared = [seed for seed in mine if seed in theirs]
    return statistics.fmean(mine[s] - theirs[s] for s in shared) if shared else None


def paired_differences(
    cells: list[dict[str, Any]], baseline: list[dict[str, Any]], key: str = "fid"
) -> list[float]:
    """One difference per training seed that both have a cell for."""
    by_seed = {c["seed"]: c for c in baseline}
    differences = (
        seed_difference(c, by_seed[c["seed"]], key) for c in cells if c["seed"] in by_seed
    )
    return [d for d in differences if d is not None]


def t_interval(differences: list[float]) -> tuple[float, float]:
    """The paired t interval of the mean difference (needs two or more)."""
    n = len(differences)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * statistics.stdev(differences) / n**0.5
    mean = statistics.fmean(differences)
    return mean - half, mean + half


def compare(
    cells: list[dict[str, Any]], baseline: list[dict[str, Any]], key: str = "fid"
) -> Comparison:
    """The comparison and its verdict: helps or hurts only when the interval excludes 0."""
    differences = paired_differences(cells, baseline, key)
    if not differences:
        return Comparison(differences, None, None, "not measured")
    if len(differences) < 2:
        return Comparison(differences, None, None, "not enough seeds")
    low, high = t_interval(differences)
    lower_is_better = metric(key).better == "lower"
    if high < 0 or low > 0:
        better = (high < 0) == lower_is_better
        return Comparison(differences, low, high, "helps" if better else "hurts")
    return Comparison(differences, low, high, "no detectable difference at this budget")
