"""Samplers and noise schedules against closed forms, with no training: a linear ODE for
the orders of Euler and Heun, Gaussian data, whose exact velocity and optimal denoiser are
known, for the flow and diffusion samplers, and the DDPM forward marginals."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from genlab import sampling
from genlab.errors import ConfigError
from genlab.noise_schedules import (
    SCHEDULES,
    alphas_cumprod,
    cosine_betas,
    linear_betas,
    q_sample,
)
from tests.test_couplings import M, S, gaussian_velocity

F64 = torch.float64


def standard_normal(n: int, seed: int = 0) -> Tensor:
    """N(0, 1) samples shifted and scaled to mean 0, std 1 exactly: a deterministic sampler
    is affine on Gaussian data, so its output moments then carry no Monte-Carlo error."""
    z = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return (z - z.mean()) / z.std()


# ----------------------------------------------------------------------- flow samplers


def linear_ode_error(sampler: sampling.Sampler, steps: int, a: float = -1.3) -> float:
    """|x(1) - e^a| for dx/dt = a x, x(0) = 1."""
    x = sampler(lambda x, t: a * x, torch.ones(1, 1, dtype=F64), torch.linspace(0, 1, steps + 1))
    return abs(x.item() - math.exp(a))


def test_euler_is_first_order_and_heun_second_order() -> None:
    # Global error C h^p: halving h divides it by 2^p.
    euler_ratio = linear_ode_error(sampling.euler, 20) / linear_ode_error(sampling.euler, 40)
    heun_ratio = linear_ode_error(sampling.heun, 20) / linear_ode_error(sampling.heun, 40)
    assert euler_ratio == pytest.approx(2.0, rel=0.05)
    assert heun_ratio == pytest.approx(4.0, rel=0.05)


def test_flow_samplers_transport_noise_to_gaussian_data() -> None:
    # The exact field carries z ~ N(0, 1) to m + s z at t = 1 (an affine flow).
    z = standard_normal(4000)
    exact = M + S * z
    times = torch.linspace(0, 1, 9)
    euler, heun = (
        sampling.euler(gaussian_velocity, z, times),
        sampling.heun(gaussian_velocity, z, times),
    )
    for x in (euler, heun):
        assert x.mean().item() == pytest.approx(M, abs=1e-6)  # the mean follows t m exactly
    assert heun.std().item() == pytest.approx(S, abs=0.005)
    assert (heun - exact).abs().max() < 0.02
    # At 8 steps Euler is far off (its std shrinks), Heun over 10 times closer.
    assert abs(euler.std().item() - S) > 10 * abs(heun.std().item() - S)
    fine = sampling.euler(gaussian_velocity, z, torch.linspace(0, 1, 201))
    assert fine.std().item() == pytest.approx(S, abs=0.005)


def test_dopri5_transports_noise_to_gaussian_data() -> None:
    pytest.importorskip("torchdiffeq")
    z = standard_normal(4000)
    model = sampling.counting(gaussian_velocity)
    x = sampling.dopri5(model, z, torch.linspace(0, 1, 9, dtype=F64), rtol=1e-7, atol=1e-7)
    assert (x - (M + S * z)).abs().max() < 1e-5
    assert x.mean().item() == pytest.approx(M, abs=1e-6)
    assert x.std().item() == pytest.approx(S, abs=1e-5)
    assert 6 <= model.calls < 500  # adaptive: at least one step of six stages


def test_dopri5_without_torchdiffeq_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchdiffeq", None)  # makes `import torchdiffeq` fail
    with pytest.raises(ImportError, match="dopri5 needs torchdiffeq: pip install torchdiffeq"):
        sampling.dopri5(gaussian_velocity, torch.zeros(2, 1), torch.linspace(0, 1, 3))


def test_flow_sampler_nfe_and_time_batches() -> None:
    seen: list[Tensor] = []

    def model(x: Tensor, t: Tensor) -> Tensor:
        seen.append(t)
        return torch.zeros_like(x)

    counted = sampling.counting(model)
    times = torch.linspace(0, 1, 6)
    sampling.euler(counted, torch.zeros(3, 1), times)
    assert counted.calls == 5
    assert all(t.shape == (3,) and t.dtype == torch.float32 for t in seen)
    assert [t[0].item() for t in seen] == pytest.approx(times[:-1].tolist())
    counted.calls = 0
    sampling.heun(counted, torch.zeros(3, 1), times)
    assert counted.calls == 10  # 2 * steps: the correction runs on the last interval too


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


# ------------------------------------------------------------------- diffusion samplers

LINEAR = alphas_cumprod(linear_betas(1000))
COSINE = alphas_cumprod(cosine_betas(1000))
COARSE = alphas_cumprod(torch.linspace(0.05, 0.3, 50))  # abar_0 = 0.95: the last step shows


def optimal_eps(abar: Tensor) -> sampling.Model:
    """E[eps | x_t] for data x0 ~ N(m, s^2), x_t = sqrt(abar) x0 + sqrt(1 - abar) eps:
    sqrt(1 - abar) / (abar s^2 + 1 - abar) (x_t - sqrt(abar) m), the ideal network."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        a = abar.double()[t].to(x.dtype).view(-1, 1)
        return (1 - a).sqrt() / (a * S**2 + 1 - a) * (x - a.sqrt() * M)

    return model


@pytest.mark.parametrize(
    ("abar", "times"),
    [
        (LINEAR, sampling.ddim_timesteps(1000, 10)),
        (COSINE, sampling.ddim_timesteps(1000, 7)),
        (COARSE, torch.arange(49, -1, -1)),
    ],
)
def test_ddim_is_euler_on_the_probability_flow_ode(abar: Tensor, times: Tensor) -> None:
    # Song et al. 2021, eq. 14: DDIM (eta = 0) is Euler's method on dxbar/dsigma = eps in
    # xbar = x / sqrt(abar), sigma = sqrt(1 / abar - 1), ending at sigma = 0. With the
    # optimal eps = sigma (xbar - m) / (s^2 + sigma^2) each step scales xbar - m by
    # 1 + (sigma_next - sigma) sigma / (s^2 + sigma^2): an exact answer at any stride.
    x = standard_normal(100)
    sigmas = [math.sqrt(1 / abar[t].item() - 1) for t in times.tolist()] + [0.0]
    gain = math.prod(1 + (b - a) * a / (S**2 + a**2) for a, b in itertools.pairwise(sigmas))
    expected = M + (x / math.sqrt(abar[times[0]].item()) - M) * gain
    out = sampling.ddim(optimal_eps(abar), x, times, alphas_cumprod=abar, clip_denoised=False)
    assert torch.allclose(out, expected, rtol=1e-9, atol=1e-9)


def diffusion_moments(
    sampler: str, abar: Tensor, times: Tensor, **options: float
) -> tuple[float, float]:
    x = sampling.SAMPLERS[sampler](
        optimal_eps(abar),
        standard_normal(20_000),
        times,
        alphas_cumprod=abar,
        clip_denoised=False,
        generator=torch.Generator().manual_seed(1),
        **options,
    )
    return x.mean().item(), x.std().item()


@pytest.mark.parametrize("abar", [LINEAR, COSINE], ids=["linear", "cosine"])
@pytest.mark.parametrize(
    ("sampler", "options"), [("ddim", {}), ("ddim", {"eta": 1.0}), ("ddpm", {})]
)
def test_full_chain_reproduces_gaussian_data(abar: Tensor, sampler: str, options: dict) -> None:
    # 1000 steps: discretisation error < 0.005; Monte-Carlo error of 20000 draws < 0.005.
    mean, std = diffusion_moments(sampler, abar, torch.arange(999, -1, -1), **options)
    assert mean == pytest.approx(M, abs=0.01)
    assert std == pytest.approx(S, abs=0.01)


def ancestral_moments(abar: Tensor, times: Tensor) -> tuple[float, float]:
    """Mean and std after ancestral sampling from N(0, 1) with the optimal denoiser, by
    pushing the Gaussian through each step: the Bayes posterior mean of Gaussian data,
    E[x0 | x_t] = m + sqrt(abar) s^2 / (abar s^2 + 1 - abar) (x_t - sqrt(abar) m), in
    the posterior q(x_prev | x_t, x0) of Ho et al. 2020, eq. 7, an affine map plus noise."""
    mean, var = 0.0, 1.0
    grid = [abar[t].item() for t in times.tolist()] + [1.0]
    for a, a_prev in itertools.pairwise(grid):
        k = math.sqrt(a) * S**2 / (a * S**2 + 1 - a)
        beta = 1 - a / a_prev
        c0, c1 = math.sqrt(a_prev) * beta / (1 - a), math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)
        mean = (c0 * k + c1) * mean + c0 * (M - k * math.sqrt(a) * M)
        var = (c0 * k + c1) ** 2 * var + (1 - a_prev) / (1 - a) * beta
    return mean, math.sqrt(var)


@pytest.mark.parametrize(
    ("abar", "times"),
    [
        (COARSE, torch.arange(49, -1, -1)),  # abar_0 = 0.95: a missing last step shows
        (LINEAR, sampling.ddim_timesteps(1000, 10)),
        (COSINE, sampling.ddim_timesteps(1000, 10)),
    ],
    ids=["coarse-full", "linear-10", "cosine-10"],
)
@pytest.mark.parametrize(("sampler", "options"), [("ddim", {"eta": 1.0}), ("ddpm", {})])
def test_stochastic_samplers_push_the_gaussian_through_the_posterior(
    abar: Tensor, times: Tensor, sampler: str, options: dict
) -> None:
    # Few or large steps under-disperse (beta_tilde leaves out the spread of x0 given x_t):
    # the samples must match that exact Gaussian, within Monte-Carlo error (< 0.004).
    mean, std = diffusion_moments(sampler, abar, times, **options)
    expected_mean, expected_std = ancestral_moments(abar, times)
    assert expected_std < S - 0.05
    assert mean == pytest.approx(expected_mean, abs=0.012)
    assert std == pytest.approx(expected_std, abs=0.01)


def test_strided_ddpm_matches_strided_ddim_eta_one() -> None:
    # On a strided chain DDPM's beta is 1 - abar_t / abar_prev, so its posterior is the
    # eta = 1 DDIM step: same draws, same samples.
    times = sampling.ddim_timesteps(1000, 20)
    x = standard_normal(500)
    runs = [
        fn(
            optimal_eps(LINEAR),
            x,
            times,
            alphas_cumprod=LINEAR,
            clip_denoised=False,
            generator=torch.Generator().manual_seed(5),
            **opts,
        )
        for fn, opts in ((sampling.ddpm, {}), (sampling.ddim, {"eta": 1.0}))
    ]
    assert torch.allclose(runs[0], runs[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("sampler", "options"), [("ddim", {"eta": 1.0}), ("ddpm", {})])
def test_last_step_returns_the_predicted_x0_without_noise(sampler: str, options: dict) -> None:
    # From timestep 0 the next alpha_bar is 1: the step returns (x - sqrt(1 - abar) eps) /
    # sqrt(abar) and draws nothing, whatever the seed.
    x = torch.randn(6, 1, dtype=F64)
    eps = optimal_eps(COARSE)(x, torch.zeros(6, dtype=torch.long))
    x0 = (x - math.sqrt(1 - COARSE[0].item()) * eps) / math.sqrt(COARSE[0].item())
    for seed in (0, 1):
        out = sampling.SAMPLERS[sampler](
            optimal_eps(COARSE),
            x,
            torch.tensor([0]),
            alphas_cumprod=COARSE,
            clip_denoised=False,
            generator=torch.Generator().manual_seed(seed),
            **options,
        )
        assert torch.allclose(out, x0, rtol=1e-12, atol=1e-12)


def test_clip_denoised_keeps_samples_in_range() -> None:
    # Data at m = 1.5 lies outside [-1, 1]: clipping the predicted x0 caps the samples.
    times = sampling.ddim_timesteps(1000, 10)
    x = standard_normal(200)
    clipped = sampling.ddim(optimal_eps(LINEAR), x, times, alphas_cumprod=LINEAR)
    free = sampling.ddim(optimal_eps(LINEAR), x, times, alphas_cumprod=LINEAR, clip_denoised=False)
    assert clipped.abs().max() <= 1.0 and free.max() > 1.2


def test_ddim_timesteps() -> None:
    assert sampling.ddim_timesteps(1000, 5).tolist() == [999, 749, 500, 250, 0]
    assert sampling.ddim_timesteps(10, 10).tolist() == list(range(9, -1, -1))
    assert sampling.ddim_timesteps(1000, 1).tolist() == [999]
    with pytest.raises(ValueError, match=r"steps must be in \[1, 10\]"):
        sampling.ddim_timesteps(10, 11)


def test_diffusion_sampler_nfe() -> None:
    times = sampling.ddim_timesteps(1000, 12)
    for name in ("ddim", "ddpm"):
        model = sampling.counting(optimal_eps(LINEAR))
        sampling.SAMPLERS[name](model, standard_normal(4), times, alphas_cumprod=LINEAR)
        assert model.calls == 12


# ------------------------------------------------------------------------- randomness


@pytest.mark.parametrize(("sampler", "options"), [("ddpm", {}), ("ddim", {"eta": 1.0})])
def test_noise_comes_from_the_generator(sampler: str, options: dict) -> None:
    def run(seed: int, global_seed: int) -> Tensor:
        torch.manual_seed(global_seed)  # must not matter: all draws use the generator
        return sampling.SAMPLERS[sampler](
            optimal_eps(LINEAR),
            torch.zeros(8, 1),
            sampling.ddim_timesteps(1000, 10),
            alphas_cumprod=LINEAR,
            generator=torch.Generator().manual_seed(seed),
            **options,
        )

    assert torch.equal(run(0, 1), run(0, 2))
    assert not torch.allclose(run(0, 1), run(1, 1))


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


def test_guided_model_drives_a_sampler() -> None:
    calls: list[int] = []
    model = sampling.guided(recording_net(calls), torch.tensor([0, 1]), 2.0, 9)
    out = sampling.euler(model, torch.zeros(2, 1), torch.linspace(0, 1, 4))
    assert out.shape == (2, 1) and calls == [4, 4, 4]


# --------------------------------------------------------------------------- registry


def test_registry_families() -> None:
    assert set(sampling.SAMPLERS) == sampling.FLOW_SAMPLERS | sampling.DIFFUSION_SAMPLERS
    assert not sampling.FLOW_SAMPLERS & sampling.DIFFUSION_SAMPLERS
    assert sampling.get_sampler("heun", "flow") is sampling.heun
    assert sampling.get_sampler("ddim", "diffusion") is sampling.ddim


def test_unknown_sampler_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="not a flow sampler; choose one of euler, heun, dopri5"):
        sampling.get_sampler("ddim", "flow")
    with pytest.raises(
        ConfigError, match="'eulr' is not a diffusion sampler; choose one of ddim, ddpm"
    ):
        sampling.get_sampler("eulr", "diffusion")
