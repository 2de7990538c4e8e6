"""The first two moments of a feature set: what FID compares, and what a statistics file holds.

The layout is pytorch-fid's (`mu`: mean, `sigma`: the unbiased covariance, as
`np.cov(features, rowvar=False)` computes it), so that statistics files move between
genlab, pytorch-fid and the evaluation suites that read theirs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Moments(NamedTuple):
    """Mean `mu` (D,) and covariance `sigma` (D, D) in float64, over `n` feature vectors.

    `n` is None for a file that does not say how many vectors it summarises.
    """

    mu: Tensor
    sigma: Tensor
    n: int | None


def moments_of(features: Tensor) -> Moments:
    """Mean and unbiased covariance of (N, D) features, computed in float64."""
    features = features.double().cpu()
    if len(features) < 2:
        raise ValueError(f"moments need at least 2 feature vectors, got {len(features)}")
    return Moments(features.mean(0), torch.cov(features.T), len(features))
