"""Score one set of samples against the reference: one extractor pass feeds every metric.

From the samples' features and logits: FID, KID and IS (MetricSuite, through
torchmetrics), precision and recall (Kynkaanniemi et al. 2019), density and coverage
(Naeem et al. 2020) and, for labelled samples, intra-class FID and class accuracy.
`over_seeds` turns several such score sets (one per seed) into means and standard
deviations.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genlab.evaluation.conditional import conditional_scores
from genlab.evaluation.image_files import ImageSet, signed_unit
from genlab.evaluation.metric_registry import METRICS
from genlab.evaluation.references import Reference
from genlab.metrics.density_coverage import density_coverage
from genlab.metrics.precision_recall import precision_recall
from genlab.metrics.suite import Extracted, MetricSuite
from genlab.utils.progress import progress

#: the metrics of one sample set that `repeats` reports as mean and standard deviation
SAMPLE_METRICS = tuple(m.key for m in METRICS if m.per_seed)


@dataclass
class SampleScorer:
    """Everything that stays fixed while sample sets are scored against one reference."""

    suite: MetricSuite
    reference: Reference
    batch_size: int
    pr_neighbours: int
    dc_neighbours: int
    device: torch.device

    def extract(self, samples: ImageSet) -> Extracted:
        """Features and logits of every sample (added to the suite), on the CPU."""
        parts, name = [], self.suite.extractor.name
        with progress(f"{name} features", total=len(samples.images)) as advance:
            for chunk in samples.images.split(self.batch_size):
                parts.append(self.suite.update(signed_unit(chunk).to(self.device)))
                advance(len(chunk))
        return Extracted(
            torch.cat([p.features.cpu() for p in parts]), torch.cat([p.logits.cpu() for p in parts])
        )

    def score(self, samples: ImageSet, seed: int) -> tuple[dict[str, Any], Extracted, dict]:
        """(scores, the samples' features and logits, seconds per stage) of one sample set."""
        start = time.perf_counter()
        extracted = self.extract(samples)
        features_seconds = time.perf_counter() - start
        self.suite.seed = seed  # KID's subsets and IS's splits
        start = time.perf_counter()
        scores: dict[str, Any] = {"is_mean": None, "is_std": None, **self.suite.compute()}
        self.suite.reset()
        metric_seconds = time.perf_counter() - start
        real = self.reference.real
        if isinstance(real, Tensor):  # features: the k-NN metrics apply
            scores["precision"], scores["recall"] = precision_recall(
                real, extracted.features, k=self.pr_neighbours, seed=seed
            )
            scores["density"], scores["coverage"] = density_coverage(
                real, extracted.features, k=self.dc_neighbours, seed=seed
            )
        else:
            scores |= dict.fromkeys(("precision", "recall", "density", "coverage"))
        scores["pr_samples"] = (
            min(len(real), len(samples)) if isinstance(real, Tensor) else None
        )  # each set is cut to this size for precision/recall and density/coverage
        scores |= conditional_scores(
            real, self.reference.labels, extracted.features, extracted.logits, samples.labels,
            self.suite.extractor.data_classes,
        )  # fmt: skip
        return scores, extracted, {"features": features_seconds, "metrics": metric_seconds}


def over_seeds(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The scores of several seeds as one: each sample metric's mean (under its own name),
    its standard deviation across seeds (`<name>_seeds_std`, n - 1 in the denominator),
    and every seed's value (`per_seed`). One run is returned as it is."""
    if len(runs) == 1:
        return runs[0]
    combined = dict(runs[0])
    per_seed: dict[str, Any] = {"seed": seeds}
    for name in SAMPLE_METRICS:
        values = [run.get(name) for run in runs]
        if any(value is None for value in values):
            continue
        combined[name] = statistics.fmean(values)
        combined[f"{name}_seeds_std"] = statistics.stdev(values)
        per_seed[name] = values
    per_class = [run.get("intra_fid_per_class") for run in runs]
    if all(per_class):
        shared = set.intersection(*(set(classes) for classes in per_class))
        combined["intra_fid_per_class"] = {
            label: statistics.fmean(classes[label] for classes in per_class)
            for label in sorted(shared)
        }
    combined["repeats"] = len(runs)
    combined["per_seed"] = per_seed
    return combined
