"""References to compare samples with: a dataset split, a folder, an array, or a statistics file.

A reference gives the real side of every metric: its features (or, for a statistics
file, only their moments, which is enough for FID and nothing else), its labels when it
has them (intra-class FID), and its image shape (what folders of samples are resized
to). `TrainingData` is the other real side that memorization and the classifier scores
need: the images a generator was trained on, and held-out real images as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.evaluation.image_files import ImageSet, read_array, read_folder, signed_unit
from genlab.evaluation.statistics import read_statistics
from genlab.metrics.extractors import FeatureExtractor
from genlab.metrics.moments import Moments
from genlab.metrics.real_features import cached_image_features

REFERENCE_KINDS = ("dataset", "folder", "array", "statistics")
HELD_OUT_SPLIT = "test"  # the dataset's test split (a held-out share where it has none)


@dataclass
class FeatureContext:
    """How features of real images are computed: extractor, cache, batch size, device."""

    extractor: FeatureExtractor
    cache_dir: str | Path
    batch_size: int
    device: torch.device

    def features(self, name: str, split: str, images: Tensor) -> Tensor:
        """Features of real `images`, through the on-disk cache (keyed by their checksum)."""
        return cached_image_features(
            name, split, signed_unit(images), self.extractor, self.cache_dir,
            self.batch_size, self.device,
        )  # fmt: skip


@dataclass
class RealImages:
    """Real images (and labels, or None) with their features."""

    images: ImageSet
    features: Tensor


@dataclass
class Reference:
    """The real side of the comparison."""

    name: str
    kind: str
    real: Tensor | Moments
    labels: Tensor | None
    image_shape: tuple[int, int, int] | None
    #: the reference's images, where it has them (held-out baseline of memorization)
    images: RealImages | None = None
    fields: dict[str, Any] | None = None

    @property
    def n_real(self) -> int | None:
        return self.real.n if isinstance(self.real, Moments) else len(self.real)

    def describe(self) -> dict[str, Any]:
        return {
            "reference": self.name,
            "reference_kind": self.kind,
            **(self.fields or {}),
            "n_real": self.n_real,
        }


@dataclass
class TrainingData:
    """Training images (what copying is measured against) and held-out real images."""

    name: str
    train: RealImages
    heldout: RealImages | None


def labels_or_none(labels: Tensor) -> Tensor | None:
    """A split's labels, or None for unlabelled data (genlab stores -1 there)."""
    return None if bool((labels < 0).any()) else labels


def dataset_images(datamodule: Any, split: str, context: FeatureContext) -> RealImages:
    """A datamodule's split with its (cached) features."""
    images = datamodule.real_images(split)
    labels = labels_or_none(datamodule.real_labels(split))
    features = context.features(datamodule.name, split, images)
    return RealImages(ImageSet(images, labels), features)


def dataset_reference(datamodule: Any, split: str, context: FeatureContext) -> Reference:
    """The split `split` of a dataset (what genlab-eval compared checkpoints with before)."""
    real = dataset_images(datamodule, split, context)
    return Reference(
        name=f"{datamodule.name} {split}",
        kind="dataset",
        real=real.features,
        labels=real.images.labels,
        image_shape=tuple(datamodule.image_shape),
        images=real,
        fields={"dataset": datamodule.name, "real_split": split},
    )


def read_images(
    path: Path, kind: str, shape: tuple[int, int, int], key: str, images_key: str,
    labels_key: str | None,
) -> ImageSet:  # fmt: skip
    """The images of a folder (decoded at `shape`) or of an array file."""
    if kind == "folder":
        return read_folder(path, shape, key)
    return read_array(path, key, images_key, labels_key)


def file_images(
    path: Path, kind: str, shape: tuple[int, int, int], key: str, images_key: str,
    labels_key: str | None, context: FeatureContext,
) -> RealImages:  # fmt: skip
    """Real images from a folder or array, checked against the extractor, with features."""
    images = read_images(path, kind, shape, key, images_key, labels_key)
    context.extractor.check_input(images.image_shape, f"{key}={path}")
    return RealImages(images, context.features(path.name or "images", kind, images.images))


def file_reference(
    path: Path, kind: str, shape: tuple[int, int, int], images_key: str,
    labels_key: str | None, context: FeatureContext,
) -> Reference:  # fmt: skip
    """A folder or an array file as the reference."""
    real = file_images(path, kind, shape, "reference", images_key, labels_key, context)
    return Reference(
        name=str(path),
        kind=kind,
        real=real.features,
        labels=real.images.labels,
        image_shape=real.images.image_shape,
        images=real,
    )


def statistics_reference(
    path: Path, extractor: FeatureExtractor, accept_unnamed: bool
) -> Reference:
    """A statistics file (mu, sigma) as the reference: FID only."""
    moments, shape, source = read_statistics(path, extractor, accept_unnamed)
    return Reference(
        name=str(path),
        kind="statistics",
        real=moments,
        labels=None,
        image_shape=shape,
        fields={"statistics_of": source},
    )
