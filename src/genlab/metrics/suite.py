"""FID, KID and IS of generated images against fixed real features, from one extractor pass.

Non-finite values never reach the metrics: a NaN or infinite image or feature makes
torch's and MKL's matrix routines behind FID fail natively (a segmentation fault or an
abort, with no message) on 2048-d features, and would silently become black pixels in
the Inception extractor's uint8 conversion. The suite refuses them with
NonFiniteSamplesError instead, and its callers decide: training logs the metrics as
NaN with a warning, `genlab-eval` fails in one line.
"""

from __future__ import annotations

import logging
import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from genlab.errors import GenlabError
from genlab.metrics.extractors import FeatureExtractor
from genlab.metrics.moments import Moments

log = logging.getLogger(__name__)


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


class Extracted(NamedTuple):
    """One extractor pass over a batch: features (for FID, KID, precision/recall, ...) and
    class logits (for IS and the classifier's accuracy)."""

    features: Tensor
    logits: Tensor


def frechet_metric(dim: int) -> FrechetInceptionDistance:
    """torchmetrics' FID over already-extracted `dim`-d features; the real side is kept on reset."""
    return FrechetInceptionDistance(feature=Precomputed(dim), reset_real_features=False)


def load_real_moments(fid: FrechetInceptionDistance, moments: Moments) -> None:
    """Put the real side's moments into torchmetrics' FID states, as if it had seen the features.

    torchmetrics keeps sum(x), sum(x x^T) and n, and computes mu = sum / n and
    sigma = (sum(x x^T) - n mu mu^T) / (n - 1); these states give back `moments` exactly
    up to float64 rounding. A file that does not say its `n` is loaded with n = 2 (the
    moments, not n, enter the distance).
    """
    n = moments.n or 2
    mu, sigma = moments.mu.double(), moments.sigma.double()
    fid.real_features_sum = n * mu
    fid.real_features_cov_sum = (n - 1) * sigma + n * torch.outer(mu, mu)
    fid.real_features_num_samples = torch.tensor(n, dtype=torch.long)


def frechet_distance(real: Tensor | Moments, fake: Tensor) -> float:
    """FID between real features (or their moments) and (N, D) fake features, in float64."""
    fid = frechet_metric(fake.shape[1])
    if isinstance(real, Moments):
        load_real_moments(fid, real)
    else:
        fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


class MetricSuite(nn.Module):
    """Accumulates generated images batch by batch; `compute()` returns every metric.

    Under DDP each rank loads its own shard of the real features (`rank`, `world_size`),
    so that the synced real statistics count every real image once and no rank's
    state is empty (torchmetrics cannot gather an empty list state). KID's subsets and
    IS's splits are drawn from `seed`, not the global generator: the values repeat for
    the same samples, agree across ranks, and leave training's random stream untouched.

    `real_features` may be the real side's `Moments` only (a statistics file): FID is then
    computed from them, and KID, which needs the features, is None.

    FID is accumulated and returned in float64 (the features are float32; torchmetrics
    would round the distance back to their dtype).
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        real_features: Tensor | Moments,
        kid_subset_size: int = 1000,
        compute_is: bool = True,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.seed = seed
        self.kid_subset_size = kid_subset_size
        self.world_size = world_size
        self.fakes_added = 0  # on this rank, since the last reset
        self.reals = 0 if isinstance(real_features, Moments) else len(real_features)
        dim = extractor.num_features
        self.fid = frechet_metric(dim)
        self.kid: KernelInceptionDistance | None = None
        with warnings.catch_warnings():  # "saves all features": bounded here by n_samples
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            if not isinstance(real_features, Moments):
                self.kid = KernelInceptionDistance(
                    feature=Precomputed(dim), subset_size=2, reset_real_features=False
                )  # the subset is sized in compute() from the images present
            self.inception_score = InceptionScore(feature=Precomputed(0)) if compute_is else None
        if isinstance(real_features, Moments):
            load_real_moments(self.fid, real_features)
            return
        bad = non_finite_rows(real_features)
        if bad:
            raise GenlabError(
                f"{bad} of {len(real_features)} real-image feature vectors hold NaN or infinite "
                "values; FID needs finite features: check the real images and the extractor"
            )
        shard = real_features[rank::world_size].to(torch.float32)
        self.fid.update(shard.double(), real=True)
        self.kid.update(shard, real=True)

    @torch.no_grad()
    def update(self, images: Tensor) -> Extracted:
        """Add generated images in [-1, 1]; returns their features and logits (for
        precision/recall, density/coverage, memorization and class accuracy).

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
        self.fid.update(features.double(), real=False)
        self.fakes_added += len(images)
        if self.kid is not None:
            self.kid.update(features, real=False)
        if self.inception_score is not None:
            self.inception_score.update(logits.float())
        return Extracted(features, logits.float())

    def compute(self) -> dict[str, float | None]:
        """Every metric over the images added since the last reset (synced across ranks);
        KID is None when the real side is only moments."""
        n_fake = self.fakes_added * self.world_size  # ranks generate equal shares
        dim = self.extractor.num_features
        if n_fake < dim:
            log.warning(
                "FID on %d samples with %d-d features is biased upwards (the sample covariance "
                "is rank-deficient); compare values only at equal sample counts", n_fake, dim
            )  # fmt: skip
        if self.kid is not None:  # KID's subsets: at most the images on either side
            self.kid.subset_size = max(2, min(self.kid_subset_size, self.reals, n_fake))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            results: dict[str, float | None] = {"fid": float(self.fid.compute())}
            kid_mean, kid_std = self.kid.compute() if self.kid is not None else (None, None)
            results["kid_mean"] = None if kid_mean is None else float(kid_mean)
            results["kid_std"] = None if kid_std is None else float(kid_std)
            if self.inception_score is not None:
                is_mean, is_std = self.inception_score.compute()
                results |= {"is_mean": float(is_mean), "is_std": float(is_std)}
        return results

    def reset(self) -> None:
        """Drop the generated images' states (real ones stay) and free their memory."""
        self.fid.reset()
        self.fakes_added = 0
        if self.kid is not None:
            self.kid.reset()
        if self.inception_score is not None:
            self.inception_score.reset()
