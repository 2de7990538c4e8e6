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

from genlab.errors import ConfigError
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
    check_label_range(fake_labels, real_labels, classifier_classes)
    if real_labels is not None and isinstance(real, Tensor):
        scores["intra_fid_mean"], scores["intra_fid_per_class"] = intra_class_fid(
            real, real_labels, fake, fake_labels
        )
    if classifier_classes is not None:
        scores["class_accuracy"] = class_accuracy(fake_logits, fake_labels)
    return scores


def check_label_range(
    fake_labels: Tensor, real_labels: Tensor | None, classifier_classes: int | None
) -> None:
    """Raise ConfigError for sample labels outside the classes of the reference (or of the
    classifier): a class they name has no real images and no logit, so its intra-class FID
    and class accuracy would be silently left out or wrong."""
    classes = int(real_labels.max()) + 1 if real_labels is not None else classifier_classes
    if classes is None:
        return
    low, high = int(fake_labels.min()), int(fake_labels.max())
    if low < 0 or high >= classes:
        raise ConfigError(
            f"the samples' labels lie in {low}..{high}, outside the {classes} classes "
            f"0..{classes - 1} of the reference: fix the labels (an .npz's arr_1, or a folder's "
            "class subfolders) so that each names a class of the reference"
        )
