"""The DDPM noise schedules against their closed forms, and classifier-free guidance. The
samplers and the denoiser core are tested in test_denoising.py."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from genlab import sampling
from genlab.denoising.denoisers import Denoiser, velocity
from genlab.denoising.processes import RectifiedFlow
from genlab.denoising.samplers import euler
from genlab.noise_schedules import (
    SCHEDULES,
    alphas_cumprod,
    cosine_betas,
    linear_betas,
    q_sample,
)

# ---------------------------------------------------------------------- noise schedules


def test_linear_schedule_endpoints() -> None:
    betas = linear_betas(1000)
    assert betas.shape == (1000,) and betas.dtype == torch.float32
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999))


def test_cosine_schedule_follows_the_squared_cosine() -> None:
    T, s = 1000, 0.008
    betas = cosine_betas(T)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    abar = alphas_cumprod(betas).double()
    # alpha_bar_t / alpha_bar_{t-1} = f(t) / f(t-1) wherever beta is not clipped.
    unclipped = (betas < 0.999).nonzero().flatten().tolist()
    assert len(unclipped) >= T - 2
    for t in unclipped[1:]:
        assert abar[t].item() / abar[t - 1].item() == pytest.approx(f[t + 1] / f[t], rel=1e-5)
    assert abar[T // 2].item() == pytest.approx(f[T // 2 + 1] / f[0], rel=1e-5)
    assert betas.max().item() == pytest.approx(0.999)  # the last beta, clipped from 1
    assert betas.max().item() <= 0.999 + 1e-7


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_alpha_bar_decreases_strictly_from_one_to_zero(name: str) -> None:
    abar = alphas_cumprod(SCHEDULES[name](1000))
    assert (abar.diff() < 0).all()
    assert 0.999 < abar[0].item() < 1 and abar[-1].item() < 1e-4


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_q_sample_has_the_forward_marginal(name: str) -> None:
    # q(x_t | x0) = N(sqrt(abar_t) x0, 1 - abar_t): checked on 20000 draws per timestep.
    abar = alphas_cumprod(SCHEDULES[name](1000))
    n = 20_000
    g = torch.Generator().manual_seed(0)
    for step in (0, 100, 500, 999):
        x0 = torch.full((n, 1, 2, 2), 0.8)
        xt = q_sample(x0, torch.full((n,), step), torch.randn(x0.shape, generator=g), abar)
        sd = math.sqrt(1 - abar[step].item())
        assert xt.mean().item() == pytest.approx(
            math.sqrt(abar[step].item()) * 0.8, abs=4 * sd / 280
        )
        assert xt.std().item() == pytest.approx(sd, rel=0.02)


# --------------------------------------------------------------------------- guidance


def recording_net(calls: list[int]) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """A nonlinear conditional net that records the batch size of each call; None labels
    read as the null label 9."""

    def net(x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        calls.append(x.shape[0])
        labels = torch.full((x.shape[0],), 9) if labels is None else labels
        return x.pow(2) * (labels + 1).view(-1, 1) + t.view(-1, 1)

    return net


def test_guidance_scales() -> None:
    calls: list[int] = []
    net = recording_net(calls)
    x, t, labels = torch.randn(4, 3), torch.rand(4), torch.tensor([0, 1, 2, 3])
    null = torch.full((4,), 9)
    cond, uncond = net(x, t, labels), net(x, t, null)
    calls.clear()
    assert torch.equal(sampling.guided(net, labels, 0.0, 9)(x, t), uncond)
    assert torch.equal(sampling.guided(net, labels, 1.0, 9)(x, t), cond)
    assert torch.equal(sampling.guided(net, None, 3.0, 9)(x, t), uncond)
    assert calls == [4, 4, 4]  # one pass each: only one is needed
    calls.clear()
    assert torch.allclose(sampling.guided(net, labels, 2.0, 9)(x, t), 2 * cond - uncond)
    assert torch.allclose(
        sampling.guided(net, labels, 3.5, 9)(x, t), uncond + 3.5 * (cond - uncond)
    )
    assert calls == [8, 8]  # cond and uncond in one doubled batch


def test_guided_network_drives_a_sampler() -> None:
    calls: list[int] = []
    network = sampling.guided(recording_net(calls), torch.tensor([0, 1]), 2.0, 9)
    denoiser = Denoiser(network, RectifiedFlow(), velocity)
    out = euler(denoiser, torch.zeros(2, 1), RectifiedFlow().own_grid(3))
    assert out.shape == (2, 1) and calls == [4, 4, 4] and denoiser.calls == 3
