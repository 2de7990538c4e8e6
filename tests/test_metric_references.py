"""genlab's FID, KID and precision/recall against implementations written independently of it:
pytorch-fid's Fréchet distance, and NumPy versions of the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from genlab.metrics.extractors import FeatureExtractor
from genlab.metrics.precision_recall import precision_recall
from genlab.metrics.suite import MetricSuite
from tests.helpers.references import reference_precision_recall, unbiased_mmd2_cubic


class Identity(FeatureExtractor):
    """Features are the inputs themselves; no class logits worth scoring (IS is off)."""

    name = "identity"
    weights_sha256 = "none"

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


def feature_sets(n_real: int, n_fake: int, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Two different, correlated Gaussian clouds (float64)."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(n_real, dim)) @ rng.normal(size=(dim, dim)) * 0.5
    fake = rng.normal(loc=0.4, scale=1.3, size=(n_fake, dim)) @ rng.normal(size=(dim, dim)) * 0.5
    return real, fake


def scores(real: np.ndarray, fake: np.ndarray, kid_subset_size: int) -> dict[str, float]:
    suite = MetricSuite(
        Identity(real.shape[1]), torch.from_numpy(real).float(),
        kid_subset_size=kid_subset_size, compute_is=False,
    )  # fmt: skip
    suite.update(torch.from_numpy(fake).float())
    return suite.compute()


def test_fid_equals_pytorch_fid_on_the_same_moments() -> None:
    real, fake = feature_sets(600, 500)
    # genlab receives float32 features and accumulates their moments in float64
    real32, fake32 = (x.astype(np.float32).astype(np.float64) for x in (real, fake))
    expected = calculate_frechet_distance(
        real32.mean(0), np.cov(real32, rowvar=False), fake32.mean(0), np.cov(fake32, rowvar=False)
    )
    assert scores(real, fake, kid_subset_size=100)["fid"] == pytest.approx(expected, rel=1e-6)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel() -> None:
    # With subsets as large as both sets, every subset holds all points: KID is one MMD^2.
    real, fake = feature_sets(200, 200)
    result = scores(real, fake, kid_subset_size=200)
    expected = unbiased_mmd2_cubic(real.astype(np.float32), fake.astype(np.float32))
    assert result["kid_mean"] == pytest.approx(expected, rel=1e-3)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-6 * abs(expected))


def test_precision_recall_match_the_papers_definition() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 8))
    fake = np.concatenate([real[:50] + 0.05 * rng.normal(size=(50, 8)),  # a few modes, copied
                           rng.normal(loc=3.0, size=(250, 8))])  # fmt: skip
    expected = reference_precision_recall(real, fake, k=3)
    assert expected[0] > 2 * expected[1] or expected[1] > 2 * expected[0]  # order is visible
    got = precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=3)
    assert got == pytest.approx(expected, abs=1e-6)


def test_a_point_on_the_radius_is_inside_the_manifold() -> None:
    """The balls are closed: on a grid, a point exactly one radius away counts as covered."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every radius is 1
    fake = torch.tensor([[4.0], [5.0], [6.0], [7.0]])  # only 4 touches a real ball (and 3 its)
    assert precision_recall(real, fake, k=1) == (0.25, 0.25)
