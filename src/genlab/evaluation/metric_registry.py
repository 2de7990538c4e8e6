"""Every metric genlab-eval reports, declared once: its key in metrics.json, its table header,
the decimals it is shown with, which direction is better, and whether it varies with the seed
of the samples.

Read by scoring (which metrics `repeats` averages), the comparison table (its columns, in
this order) and the results page (headers, decimals, which difference is an improvement).
A metric added here appears everywhere; a stored result that predates it shows `-`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    key: str  # in genlab-eval's metrics.json (and a results cell's scores)
    header: str  # the column header in tables
    decimals: int  # decimals on the results page
    better: Literal["lower", "higher"] | None  # None: a property, not a score
    per_seed: bool = False  # changes with the samples' seed: `repeats` reports mean and std
    column: bool = True  # a column of genlab-eval's comparison table


METRICS: tuple[Metric, ...] = (
    Metric("n_samples", "n", 0, None),
    Metric("fid", "FID", 1, "lower", per_seed=True),
    Metric("kid_mean", "KID", 4, "lower", per_seed=True),
    Metric("kid_std", "KID std", 4, None, per_seed=True, column=False),
    Metric("is_mean", "IS", 2, "higher", per_seed=True),
    Metric("is_std", "IS std", 2, None, per_seed=True, column=False),
    Metric("precision", "precision", 3, "higher", per_seed=True),
    Metric("recall", "recall", 3, "higher", per_seed=True),
    Metric("density", "density", 3, "higher", per_seed=True),
    Metric("coverage", "coverage", 3, "higher", per_seed=True),
    Metric("intra_fid_mean", "intra-FID", 1, "lower", per_seed=True),
    Metric("class_accuracy", "class acc.", 3, "higher", per_seed=True),
    Metric("cas_accuracy", "CAS", 3, "higher"),
    Metric("cas_real_accuracy", "real-trained acc.", 3, "higher"),
    Metric("augmented_accuracy", "real+gen acc.", 3, "higher"),
    Metric("real_only_accuracy", "real-only acc.", 3, "higher"),
    Metric("copied_fraction", "copied", 3, "lower"),
    Metric("authenticity", "authenticity", 3, "higher"),
    Metric("nn_pixel_distance_median", "NN pixel dist.", 4, None),
    Metric("nn_feature_distance_median", "NN feature dist.", 3, None),
    Metric("sampling_images_per_second", "images/s", 0, "higher", column=False),
    Metric("nfe", "NFE", 0, None, column=False),
)
BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}


def metric(key: str) -> Metric:
    """The declaration of `key` (a KeyError names a metric nobody declared)."""
    return BY_KEY[key]
