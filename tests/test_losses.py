"""Losses against the seed's formulas, on values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from genlab import losses
from genlab.errors import ConfigError

LOG2 = math.log(2.0)


def test_nonsaturating_matches_seed_formula_at_half() -> None:
    # D(x) = D(G(z)) = sigmoid(0) = 0.5: L_D = -[log .5 + log .5] = 2 log 2; L_G = -log .5 = log 2.
    zero = torch.zeros(4)
    assert losses.nonsaturating_d(zero, zero).item() == pytest.approx(2 * LOG2)
    assert losses.nonsaturating_g(zero).item() == pytest.approx(LOG2)


def test_nonsaturating_matches_seed_formula_off_center() -> None:
    # logit log(3) -> D = 0.75; logit -log(3) -> D = 0.25.
    real = torch.full((3,), math.log(3.0))
    fake = torch.full((3,), -math.log(3.0))
    expected_d = -(math.log(0.75) + math.log(1 - 0.25))  # 0.5753641
    expected_g = -math.log(0.25)  # 1.3862944
    assert losses.nonsaturating_d(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert losses.nonsaturating_g(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_nonsaturating_is_finite_for_extreme_logits() -> None:
    # log(sigmoid(-200)) underflows to -inf in float32; the logit form must not.
    real = torch.tensor([-200.0])
    fake = torch.tensor([200.0])
    assert losses.nonsaturating_d(real, fake).item() == pytest.approx(400.0)
    assert torch.isfinite(losses.nonsaturating_g(-fake))


def test_nonsaturating_agrees_with_bce_on_probabilities() -> None:
    real, fake = torch.randn(32), torch.randn(32)
    bce = torch.nn.functional.binary_cross_entropy
    expected = bce(torch.sigmoid(real), torch.ones(32)) + bce(torch.sigmoid(fake), torch.zeros(32))
    assert losses.nonsaturating_d(real, fake).item() == pytest.approx(expected.item(), rel=1e-5)


def test_hinge_wasserstein_lsgan_hand_values() -> None:
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.0])
    # hinge: mean(relu(1 - [2, .5])) = .25; mean(relu(1 + [-2, 0])) = .5
    assert losses.hinge_d(real, fake).item() == pytest.approx(0.75)
    assert losses.critic_g(fake).item() == pytest.approx(1.0)
    # wasserstein: mean(fake) - mean(real) = -1 - 1.25
    assert losses.wasserstein_d(real, fake).item() == pytest.approx(-2.25)
    # lsgan: .5 * mean([1, .25]) + .5 * mean([4, 0]) = .3125 + 1
    assert losses.lsgan_d(real, fake).item() == pytest.approx(1.3125)
    assert losses.lsgan_g(fake).item() == pytest.approx(0.5 * (9 + 1) / 2)


def test_unknown_gan_loss_lists_choices() -> None:
    with pytest.raises(ConfigError, match="nonsaturating, hinge, wasserstein, lsgan"):
        losses.gan_loss("nonsaturatin")


def test_gaussian_kl_hand_values() -> None:
    # KL(N(1, e^0) || N(0, 1)) = .5 * (1 + 1 - 1 - 0) = .5 per dim.
    mu = torch.ones(1, 3)
    assert losses.gaussian_kl(mu, torch.zeros(1, 3)).item() == pytest.approx(1.5)
    assert losses.gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).tolist() == [0.0, 0.0]


def test_bernoulli_nll_hand_values() -> None:
    # logit 0 -> p = .5: -log .5 per pixel, whatever the target.
    nll = losses.bernoulli_nll(torch.zeros(2, 1, 2, 2), torch.rand(2, 1, 2, 2))
    assert nll.tolist() == pytest.approx([4 * LOG2] * 2)


def test_gaussian_nll_hand_values() -> None:
    sigma = 0.5
    target = torch.ones(1, 1, 1, 2)
    nll = losses.gaussian_nll(torch.zeros_like(target), target, sigma)
    per_pixel = 0.5 * (1 / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)
    assert nll.item() == pytest.approx(2 * per_pixel, rel=1e-6)
