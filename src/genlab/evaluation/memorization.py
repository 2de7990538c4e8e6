"""Does a generator copy its training images?

For every sample, the distance to its nearest and second-nearest training image, in
pixels (RMS over the pixel values in [-1, 1]) and in the extractor's feature space;
held-out real images, which no generator saw, give the same numbers as the baseline.

- `copied_fraction`: the share of samples that are near-copies, by the criterion of Yoon,
  Choi, Kwon & Ryu ("Diffusion Probabilistic Models Generalize when They Fail to
  Memorize", ICML 2023 workshop): a sample is a near-copy when its nearest training image
  is less than a third as far as the second nearest (d1 < d2 / 3, in pixels), or
  identical to it (an RMS distance below 1e-4, far below one uint8 step of 2/255, which
  also catches a copy of an image the training set holds twice). A copy of a training
  image sits at 0 from it and at a normal distance from the rest; a new image is about as
  far from its nearest as from its second nearest.
- `authenticity` (Alaa, van Breugel, Saveliev & van der Schaar, "How Faithful is your
  Synthetic Data?", ICML 2022): the share of samples farther from their nearest training
  image than that training image is from its own nearest training neighbour, in feature
  space. A copier scores 0; data drawn afresh from the training distribution scores
  about one half (the held-out images say how much here).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from genlab.evaluation.image_files import ImageSet, signed_unit
from genlab.evaluation.references import RealImages, TrainingData
from genlab.metrics.precision_recall import DISTANCE_BLOCK, kth_neighbour_radii

NEAR_COPY_RATIO = 1 / 3  # Yoon et al. 2023
IDENTICAL_RMS = 1e-4  # RMS pixel distance of an identical image, up to the rounding of cdist


class Neighbours(NamedTuple):
    """Distances to the nearest and second-nearest training point, and the nearest's index."""

    nearest: Tensor
    second: Tensor
    index: Tensor


def nearest_training(queries: Tensor, train: Tensor) -> Neighbours:
    """The two nearest rows of `train` for every row of `queries` (Euclidean), in blocks."""
    nearest, second, index = [], [], []
    for block in queries.split(DISTANCE_BLOCK):
        top = torch.cdist(block, train).topk(2, dim=1, largest=False)
        nearest.append(top.values[:, 0])
        second.append(top.values[:, 1])
        index.append(top.indices[:, 0])
    return Neighbours(torch.cat(nearest), torch.cat(second), torch.cat(index))


def near_copies(neighbours: Neighbours, ratio: float = NEAR_COPY_RATIO) -> Tensor:
    """Which queries are near-copies: d1 < ratio * d2, or d1 ~ 0 (RMS pixel distances)."""
    return (neighbours.nearest < ratio * neighbours.second) | (neighbours.nearest < IDENTICAL_RMS)


def flat_pixels(images: Tensor) -> Tensor:
    """(N, C*H*W) float64 pixels in [-1, 1]."""
    return signed_unit(images).flatten(1).double()


def median(values: Tensor) -> float:
    return float(values.median())


class Memorization:
    """Nearest-training-image statistics of sample sets against one training set."""

    def __init__(self, training: TrainingData, ratio: float = NEAR_COPY_RATIO) -> None:
        self.training = training
        self.ratio = ratio
        self.train_pixels = flat_pixels(training.train.images.images)
        self.train_features = training.train.features.double()
        # Alaa et al.: each training point's distance to its nearest other training point
        self.train_radii = kth_neighbour_radii(self.train_features, 1)
        self.pixel_scale = math.sqrt(self.train_pixels.shape[1])  # l2 -> RMS per value
        self.baseline = (
            self.statistics(training.heldout.images.images, training.heldout.features)[0]
            if training.heldout is not None
            else None
        )

    def statistics(
        self, images: Tensor, features: Tensor
    ) -> tuple[dict[str, float | None], Neighbours | None]:
        """Copied fraction and median distances (pixels, features), authenticity; and the
        pixel neighbours (None when the images' shape is not the training images')."""
        by_features = nearest_training(features.double(), self.train_features)
        stats: dict[str, float | None] = {
            "nn_feature_distance_median": median(by_features.nearest),
            "authenticity": float(
                (by_features.nearest > self.train_radii[by_features.index]).double().mean()
            ),
            "copied_fraction": None,
            "nn_pixel_distance_median": None,
        }
        if tuple(images.shape[1:]) != tuple(self.training.train.images.image_shape):
            return stats, None
        nearest, second, index = nearest_training(flat_pixels(images), self.train_pixels)
        by_pixels = Neighbours(nearest / self.pixel_scale, second / self.pixel_scale, index)
        stats["copied_fraction"] = float(near_copies(by_pixels, self.ratio).double().mean())
        stats["nn_pixel_distance_median"] = median(by_pixels.nearest)
        return stats, by_pixels

    def report(
        self, samples: ImageSet, features: Tensor
    ) -> tuple[dict[str, float | int | None], Neighbours | None]:
        """The samples' statistics beside the held-out baseline's (`<name>_heldout`)."""
        stats, neighbours = self.statistics(samples.images, features)
        report: dict[str, float | int | None] = dict(stats)
        for name, value in (self.baseline or dict.fromkeys(stats)).items():
            report[f"{name}_heldout"] = value
        report["memorization_train_images"] = len(self.train_features)
        heldout = self.training.heldout
        report["memorization_heldout_images"] = None if heldout is None else len(heldout.features)
        report["memorization_reference"] = self.training.name
        return report, neighbours


def write_closest_pairs(
    samples: ImageSet, train: RealImages, neighbours: Neighbours, path: Path, pairs: int
) -> Path:
    """A PNG of the `pairs` samples closest to a training image (top row) above that image."""
    order = neighbours.nearest.argsort()[:pairs]
    top = signed_unit(samples.images[order])
    bottom = signed_unit(train.images.images[neighbours.index[order]])
    grid = make_grid(torch.cat([top, bottom]), nrow=len(order), normalize=True, value_range=(-1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path
