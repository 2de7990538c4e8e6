"""FID, KID and IS of generated images against fixed real features, from one extractor pass.

Non-finite values never reach the metrics: a NaN or infinite image or feature makes
torch's and MKL's matrix routines behind FID fail natively (a segmentation fault or an
abort, with no message) on 2048-d features, and would silently become black pixels in
the Inception extractor's uint8 conversion. The suite refuses them with
NonFiniteSamplesError instead, and its callers decide: training logs the metrics as
NaN with a warning, `genlab-eval` fails in one line.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from genlab.errors import GenlabError
from genlab.metrics.extractors import FeatureExtractor


class NonFiniteSamplesError(GenlabError):
    """Generated images (or their features) hold NaN or infinite values."""


def non_finite_rows(values: Tensor) -> int:
    """How many of the rows (images, feature vectors) hold a NaN or an infinity."""
    return int((~torch.isfinite(values.flatten(1))).any(dim=1).sum())


class Precomputed(nn.Module):
    """Hands already-extracted features to torchmetrics' image metrics.

    This is how one extractor pass serves FID, KID and IS together (the job of
    torchmetrics' FeatureShare), while torchmetrics keeps the states: float64
    sums and covariances, and their all-reduce across DDP ranks.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class MetricSuite(nn.Module):
    """Accumulates generated images batch by batch; `compute()` returns every metric.

    Under DDP each rank loads its own shard of the real features (`rank`, `world_size`),
    so that the synced real statistics count every real image once and no rank's
    state is empty (torchmetrics cannot gather an empty list state). KID's subsets and
    IS's splits are drawn from `seed`, not the global generator: the values repeat for
    the same samples, agree across ranks, and leave training's random stream untouched.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        real_features: Tensor,
        n_fake: int,
        kid_subset_size: int = 1000,
        compute_is: bool = True,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.seed = seed
        dim = extractor.num_features
        if n_fake < dim:
            warnings.warn(
                f"FID on {n_fake} samples with {dim}-d features is biased upwards (the sample "
                f"covariance is rank-deficient); compare values only at equal sample counts",
                stacklevel=2,
            )
        self.fid = FrechetInceptionDistance(feature=Precomputed(dim), reset_real_features=False)
        subset = max(2, min(kid_subset_size, len(real_features), n_fake))
        with warnings.catch_warnings():  # "saves all features": bounded here by n_samples
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            self.kid = KernelInceptionDistance(
                feature=Precomputed(dim), subset_size=subset, reset_real_features=False
            )
            self.inception_score = InceptionScore(feature=Precomputed(0)) if compute_is else None
        bad = non_finite_rows(real_features)
        if bad:
            raise GenlabError(
                f"{bad} of {len(real_features)} real-image feature vectors hold NaN or infinite "
                "values; FID needs finite features: check the real images and the extractor"
            )
        shard = real_features[rank::world_size].to(torch.float32)
        self.fid.update(shard, real=True)
        self.kid.update(shard, real=True)

    @torch.no_grad()
    def update(self, images: Tensor) -> Tensor:
        """Add generated images in [-1, 1]; returns their features (for precision/recall).

        Raises NonFiniteSamplesError, adding nothing, when an image or a feature vector
        holds a NaN or an infinity (one host sync per batch).
        """
        bad = non_finite_rows(images)
        if bad:
            raise NonFiniteSamplesError(
                f"{bad} of {len(images)} generated images hold NaN or infinite values"
            )
        device_type = images.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            features, logits = self.extractor(images.float())
        features = features.float()
        if non_finite_rows(features) or non_finite_rows(logits):
            raise NonFiniteSamplesError(
                f"the {self.extractor.name} features of {len(images)} generated images hold "
                "NaN or infinite values"
            )
        self.fid.update(features, real=False)
        self.kid.update(features, real=False)
        if self.inception_score is not None:
            self.inception_score.update(logits.float())
        return features

    def compute(self) -> dict[str, float]:
        """Every metric over the images added since the last reset (synced across ranks)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = self.kid.compute()
            results = {
                "fid": float(self.fid.compute()),
                "kid_mean": float(kid_mean),
                "kid_std": float(kid_std),
            }
            if self.inception_score is not None:
                is_mean, is_std = self.inception_score.compute()
                results |= {"is_mean": float(is_mean), "is_std": float(is_std)}
        return results

    def reset(self) -> None:
        """Drop the generated images' states (real ones stay) and free their memory."""
        self.fid.reset()
        self.kid.reset()
        if self.inception_score is not None:
            self.inception_score.reset()
