"""Metrics of labelled samples (class-conditional models): intra-class FID and the accuracy
with which the extractor's classifier recognises the requested class.

- Intra-class FID (Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018): the
  FID between the samples generated for class c and the real images of class c, for every
  class; its mean over the classes. An unconditional FID cannot see a model that draws
  good sevens when asked for twos.
- Class accuracy: the share of samples that the extractor's own classifier assigns to the
  class they were generated for (LeNet: the ten digits; 98.6 % on held-out real digits,
  the ceiling this number can reach).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from genlab.metrics.moments import Moments
from genlab.metrics.suite import frechet_distance


def class_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of rows whose highest logit is their label."""
    return float((logits.argmax(dim=1) == labels.to(logits.device)).float().mean())


def intra_class_fid(
    real: Tensor, real_labels: Tensor, fake: Tensor, fake_labels: Tensor
) -> tuple[float | None, dict[int, float]]:
    """(mean, per class) FID between each class's samples and real images.

    Classes with fewer than two images on either side have no covariance and are left out;
    the mean is None when none is left.
    """
    per_class: dict[int, float] = {}
    for label in sorted(set(real_labels.tolist()) & set(fake_labels.tolist())):
        real_c, fake_c = real[real_labels == label], fake[fake_labels == label]
        if len(real_c) >= 2 and len(fake_c) >= 2:
            per_class[int(label)] = frechet_distance(real_c, fake_c)
    mean = sum(per_class.values()) / len(per_class) if per_class else None
    return mean, per_class


def conditional_scores(
    real: Tensor | Moments,
    real_labels: Tensor | None,
    fake: Tensor,
    fake_logits: Tensor,
    fake_labels: Tensor | None,
    classifier_classes: int | None,
) -> dict[str, Any]:
    """The conditional metrics that apply: intra-class FID needs labelled real features,
    class accuracy an extractor whose classes are the data's; the others are None."""
    scores: dict[str, Any] = {"intra_fid_mean": None, "intra_fid_per_class": None,
                              "class_accuracy": None}  # fmt: skip
    if fake_labels is None:
        return scores
    if real_labels is not None and isinstance(real, Tensor):
        scores["intra_fid_mean"], scores["intra_fid_per_class"] = intra_class_fid(
            real, real_labels, fake, fake_labels
        )
    if classifier_classes is not None and int(fake_labels.max()) < classifier_classes:
        scores["class_accuracy"] = class_accuracy(fake_logits, fake_labels)
    return scores
