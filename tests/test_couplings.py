"""Flow-matching paths and couplings against closed forms: the marginal velocity of a
Gaussian-to-Gaussian path, and brute-force optimal transport on tiny batches."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from genlab.couplings import linear_path, ot_pairing

M, S = 1.5, 0.5  # data x1 ~ N(M, S^2) per dimension; noise x0 ~ N(0, 1)


def gaussian_velocity(x: Tensor, t: Tensor) -> Tensor:
    """E[x1 - x0 | x_t = x] on the straight path, x0 ~ N(0, 1), x1 ~ N(M, S^2) independent:
    m + Cov(x1 - x0, x_t) / Var(x_t) (x - t m), Var(x_t) = (1 - t)^2 + t^2 s^2.
    `t` has shape (N,) and broadcasts over the other dimensions of x."""
    t = t.view(-1, *([1] * (x.dim() - 1)))
    return M + (t * S**2 - (1 - t)) / ((1 - t) ** 2 + t**2 * S**2) * (x - t * M)


@pytest.mark.parametrize("time", [0.1, 0.5, 0.9])
def test_linear_path_target_regresses_to_the_marginal_velocity(time: float) -> None:
    # Flow matching regresses the target on x_t; for Gaussians E[target | x_t] is linear in
    # x_t, so a least-squares line through samples must recover the closed-form field.
    n = 200_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 1, generator=g, dtype=torch.float64)
    x1 = M + S * torch.randn(n, 1, generator=g, dtype=torch.float64)
    t = torch.full((n,), time, dtype=torch.float64)
    xt, target = linear_path(x0, x1, t)
    design = torch.cat([xt, torch.ones_like(xt)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, target).solution.flatten().tolist()
    # The closed form at two points gives its slope and intercept.
    at = gaussian_velocity(torch.tensor([[0.0], [1.0]], dtype=torch.float64), t[:2]).flatten()
    # Standard errors here are below 0.005; 0.02 is 4+ of them.
    assert slope == pytest.approx((at[1] - at[0]).item(), abs=0.02)
    assert intercept == pytest.approx(at[0].item(), abs=0.02)
    # And x_t itself has the path's marginal N(t m, (1 - t)^2 + t^2 s^2).
    assert xt.mean().item() == pytest.approx(time * M, abs=0.01)
    assert xt.var().item() == pytest.approx((1 - time) ** 2 + time**2 * S**2, rel=0.02)


def test_linear_path_endpoints_and_image_broadcast() -> None:
    x0, x1 = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    xt, target = linear_path(x0, x1, torch.tensor([0.0, 1.0, 0.25]))
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], x1[1])
    assert torch.allclose(xt[2], 0.75 * x0[2] + 0.25 * x1[2])
    assert torch.equal(target, x1 - x0)


def cost(x0: Tensor, x1: Tensor, perm: Tensor | list[int]) -> float:
    return (x0[list(perm)] - x1).flatten(1).pow(2).sum().item()


def test_ot_pairing_is_a_permutation_no_worse_than_identity() -> None:
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(64, 1, 6, 6, generator=g), torch.randn(64, 1, 6, 6, generator=g)
    perm = ot_pairing(x0, x1)
    assert perm.dtype == torch.long
    assert sorted(perm.tolist()) == list(range(64))
    assert cost(x0, x1, perm) < cost(x0, x1, range(64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ot_pairing_equals_the_brute_force_optimum(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0, x1 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    best = min(itertools.permutations(range(5)), key=lambda p: cost(x0, x1, p))
    assert ot_pairing(x0, x1).tolist() == list(best)


def test_ot_pairing_keeps_an_optimal_pairing() -> None:
    # x1 = x0 + c: the identity is optimal (sum ||x0_p(i) - x0_i||^2 grows for any other p,
    # the shift adding the same cost to every pairing), whatever order the batch is in.
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(32, 1, 4, 4, generator=g)
    assert ot_pairing(x0, x0 + 0.7).tolist() == list(range(32))
    # Scrambled data: the pairing recovers the scrambling.
    order = torch.randperm(32, generator=g)
    assert ot_pairing(x0, x0[order] + 0.7).tolist() == order.tolist()
