"""Samplers: plain functions over noise levels that serve every iterative family (after
k-diffusion's sampling.py and EDM's generate.py).

Each has the signature `sampler(denoiser, noise, sigmas, *, generator=None, **options)`:
`denoiser` is a `Denoiser` (D(x, sigma) and its process), `noise` is N(0, I) of the image's
shape, `sigmas` a grid of `genlab.denoising.grids` (decreasing Python floats ending at 0).
Each works on the process's own x = s(sigma) (x0 + sigma n) and returns x at sigma = 0.

Beside each function, `register` declares what callers need without running it: its options
(a dataclass whose fields carry their checks), its NFE on a grid, and whether it is
deterministic (what `torch.export` can unroll). A new sampler is one function and its
`@register` line.

Fresh noise is drawn on the CPU from `generator` and moved to x's device, so that a seed
gives the same images on any device.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from genlab.denoising.denoisers import Denoiser
from genlab.utils.numbers import is_number

Sampler = Callable[..., Tensor]


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) of x's shape, drawn on the CPU from `generator` when one is given."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def intervals(sigmas: Sequence[float]) -> Iterator[tuple[float, float]]:
    """(sigma, sigma_next) of each step."""
    return itertools.pairwise(sigmas)


def start(denoiser: Denoiser, noise: Tensor, sigmas: Sequence[float]) -> Tensor:
    """The state at the grid's first level: the noise at the process's std there."""
    return noise * denoiser.process.start_std(sigmas[0])


def transfer(
    denoiser: Denoiser,
    x: Tensor,
    denoised: Tensor,
    sigma: float,
    sigma_next: float,
    fresh: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    """x at sigma_next from x at sigma and its denoised estimate D: the clean part s' D plus
    the estimated noise n_hat = (x - s D) / b, of which a share `fresh` (as a std) is
    replaced by `noise`.

    With fresh = 0 this is DDIM's deterministic update (Song et al. 2021, eq. 12), which is
    Euler's method on the probability-flow ODE in sigma (Karras et al. 2022, section 3) and
    first-order DPM-Solver++ (Lu et al. 2022); it stays finite at sigma = inf.
    """
    process = denoiser.process
    b, b_next, s_next = (
        process.noise_std(sigma),
        process.noise_std(sigma_next),
        process.scale(sigma_next),
    )
    estimated_noise = (x - process.scale(sigma) * denoised) / b
    kept = math.sqrt(max(b_next**2 - fresh**2, 0.0))
    x = s_next * denoised + kept * estimated_noise
    return x if noise is None or fresh == 0 else x + fresh * noise


# --------------------------------------------------------------------------- options


def option(default: Any, check: Callable[[Any], bool], requirement: str, doc: str) -> Any:
    """A sampler option: its default, its check, and what an error says it must do."""
    return field(default=default, metadata={"check": check, "requirement": requirement, "doc": doc})


def finite_number(
    low: float = -math.inf, high: float = math.inf, strict: bool = False
) -> Callable[[Any], bool]:
    """A check for a finite number in [low, high] (> low when `strict`): NaN and inf pass
    every comparison a solver makes and come out as black images."""

    def check(value: Any) -> bool:
        return (
            is_number(value)
            and math.isfinite(value)
            and (value > low if strict else value >= low)
            and value <= high
        )

    return check


def number_at_least(low: float) -> Callable[[Any], bool]:
    """A number >= low, inf allowed (EDM's S_tmax)."""
    return lambda value: is_number(value) and not math.isnan(value) and value >= low


@dataclass(frozen=True)
class NoOptions:
    """A sampler with no options."""


@dataclass(frozen=True)
class DDIMOptions:
    eta: float = option(
        0.0,
        finite_number(0.0, 1.0),
        "lie in [0, 1]",
        "fresh noise: 0 deterministic DDIM, 1 DDPM's posterior",
    )


@dataclass(frozen=True)
class HeunOptions:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2); s_churn = 0 is its
    deterministic Algorithm 1."""

    s_churn: float = option(
        0.0,
        finite_number(0.0),
        "be a finite number >= 0",
        "EDM's S_churn: noise added per step (0: deterministic)",
    )
    s_tmin: float = option(
        0.0,
        finite_number(0.0),
        "be a finite number >= 0",
        "EDM's S_tmin: churn only at sigma >= s_tmin",
    )
    s_tmax: float = option(
        math.inf,
        number_at_least(0.0),
        "be a number >= 0 (.inf allowed)",
        "EDM's S_tmax: churn only at sigma <= s_tmax",
    )
    s_noise: float = option(
        1.0, finite_number(0.0), "be a finite number >= 0", "EDM's S_noise: std of the churn noise"
    )
    correction_cap: float = option(
        1.0,
        number_at_least(0.0),
        "be a number >= 0 (.inf allowed)",
        "the most weight sigma / (2 sigma') on the new denoiser estimate (1: the estimate stays "
        "between the step's two; .inf: EDM's trapezoid as published)",
    )


@dataclass(frozen=True)
class Dopri5Options:
    rtol: float = option(
        1e-5,
        finite_number(0.0, strict=True),
        "be a finite number > 0",
        "dopri5: relative error tolerance per step (torchdiffeq's rtol)",
    )
    atol: float = option(
        1e-5,
        finite_number(0.0, strict=True),
        "be a finite number > 0",
        "dopri5: absolute error tolerance per step (torchdiffeq's atol)",
    )


@dataclass(frozen=True)
class SamplerSpec:
    """What a sampler declares beside its function."""

    function: Sampler
    options: type  # a dataclass of its options, each made by `option`
    nfe: Callable[[Sequence[float]], int | None]  # network evaluations on a grid (None: adaptive)
    stochastic: Callable[[Any], bool]  # whether it draws fresh noise with these options

    def read_options(self, settings: dict[str, Any]) -> Any:
        """Its options from `settings` (which may hold other samplers' options too)."""
        return self.options(
            **{f.name: settings[f.name] for f in fields(self.options) if f.name in settings}
        )


SAMPLERS: dict[str, SamplerSpec] = {}


def register(
    name: str,
    options: type = NoOptions,
    nfe: Callable[[Sequence[float]], int | None] = lambda sigmas: len(sigmas) - 1,
    stochastic: Callable[[Any], bool] = lambda options: False,
) -> Callable[[Sampler], Sampler]:
    """Register a sampler under `name` (its config name) with its declaration; by default one
    evaluation per step and deterministic."""

    def add(function: Sampler) -> Sampler:
        SAMPLERS[name] = SamplerSpec(function, options, nfe, stochastic)
        return function

    return add


def option_fields() -> dict[str, Any]:
    """Every option of every sampler, by name (for checking a settings dict)."""
    return {f.name: f for spec in SAMPLERS.values() for f in fields(spec.options)}


# -------------------------------------------------------------------------- samplers


@register("euler")
@torch.no_grad()
def euler(
    denoiser: Denoiser,
    noise: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Euler's method on the probability-flow ODE dx_bar/dsigma = (x_bar - D) / sigma
    (Karras et al. 2022, eq. 3 with s = 1): first order; equal to deterministic DDIM and to
    Euler on the flow-matching ODE dx/dt = v. NFE = steps."""
    x = start(denoiser, noise, sigmas)
    for sigma, sigma_next in intervals(sigmas):
        x = transfer(denoiser, x, denoiser(x, sigma), sigma, sigma_next)
    return x


@register("ddim", DDIMOptions, stochastic=lambda options: options.eta > 0)
@torch.no_grad()
def ddim(
    denoiser: Denoiser,
    noise: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12 and 16): the Euler update with a share of the
    noise renewed, sigma_eta = eta b' sqrt(1 - (sigma' / sigma)^2) in x's units (k-diffusion's
    `get_ancestral_step`). eta = 0 is `euler`, eta = 1 the DDPM posterior q(x' | x, x0).
    NFE = steps."""
    x = start(denoiser, noise, sigmas)
    for sigma, sigma_next in intervals(sigmas):
        denoised = denoiser(x, sigma)
        fresh = (
            eta * denoiser.process.noise_std(sigma_next) * math.sqrt(1 - (sigma_next / sigma) ** 2)
        )
        renewal = noise_like(x, generator) if fresh > 0 else None
        x = transfer(denoiser, x, denoised, sigma, sigma_next, fresh, renewal)
    return x


@register("ancestral", stochastic=lambda options: True)
def ancestral(
    denoiser: Denoiser,
    noise: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2; k-diffusion's `sample_euler_ancestral`):
    each step draws from the posterior q(x' | x, x0 = D), i.e. DDIM with eta = 1; the last
    step returns D without noise. NFE = steps."""
    return ddim(denoiser, noise, sigmas, generator=generator, eta=1.0)


def heun_nfe(sigmas: Sequence[float]) -> int:
    """2 per step, 1 on a step from sigma = inf or to sigma = 0 (an Euler step there)."""
    return sum(1 if math.isinf(a) or b == 0 else 2 for a, b in intervals(sigmas))


@register("heun", HeunOptions, nfe=heun_nfe, stochastic=lambda options: options.s_churn > 0)
@torch.no_grad()
def heun(
    denoiser: Denoiser,
    noise: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    correction_cap: float = 1.0,
) -> Tensor:
    """EDM's sampler (Karras et al. 2022, Algorithm 2): per step, optionally raise the level to
    sigma_hat = sigma (1 + gamma), gamma = min(s_churn / N, sqrt(2) - 1) within
    [s_tmin, s_tmax], with fresh noise of std sqrt(sigma_hat^2 - sigma^2); then Heun's
    second-order step in sigma on x_bar = x / s. The step to sigma = 0 is an Euler step
    (D there is the answer), and so is a step from sigma = inf (flow matching's t = 0),
    where sigma has no finite step size. s_churn = 0 is Algorithm 1, deterministic.

    Heun's trapezoid equals the update of `transfer` with the clean estimate
    D0 + sigma_hat / (2 sigma') (D1 - D0), D0 and D1 the denoiser at the step's two ends:
    when sigma_hat > 2 sigma' it extrapolates past D1, by a factor of 5,800 on the first
    step of the cosine DDPM's own grid (sigma 20,291 -> 1.75), where the samples were noise.
    The weight is therefore capped at `correction_cap`, 1 by default (the estimate stays
    between D0 and D1): steps with sigma_hat <= 2 sigma' are EDM's exactly, and the method
    stays second order. `correction_cap` = inf is EDM's trapezoid as published.
    """
    process = denoiser.process
    x = start(denoiser, noise, sigmas)
    gamma_max = min(s_churn / (len(sigmas) - 1), math.sqrt(2) - 1)
    for sigma, sigma_next in intervals(sigmas):
        if math.isinf(sigma):
            x = transfer(denoiser, x, denoiser(x, sigma), sigma, sigma_next)
            continue
        x_bar = x / process.scale(sigma)
        gamma = gamma_max if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x_bar = x_bar + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * noise_like(x, generator)
        denoised = denoiser(x_bar * process.scale(sigma_hat), sigma_hat)
        if sigma_next > 0:
            x_euler = denoised + sigma_next / sigma_hat * (x_bar - denoised)
            denoised_next = denoiser(x_euler * process.scale(sigma_next), sigma_next)
            weight = min(sigma_hat / (2 * sigma_next), correction_cap)
            denoised = denoised + weight * (denoised_next - denoised)
        x = (denoised + sigma_next / sigma_hat * (x_bar - denoised)) * process.scale(sigma_next)
    return x


@register("dpmpp_2m")
@torch.no_grad()
def dpmpp_2m(
    denoiser: Denoiser,
    noise: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2; k-diffusion's
    `sample_dpmpp_2m`): the exponential-integrator update of `transfer` with D replaced by
    the second-order extrapolation (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, r = h_{i-1} / h_i,
    h = log(sigma / sigma_next); first order on the first and last steps. NFE = steps."""
    x = start(denoiser, noise, sigmas)
    previous, h_previous = None, math.nan
    for sigma, sigma_next in intervals(sigmas):
        denoised = denoiser(x, sigma)
        h = math.log(sigma / sigma_next) if sigma_next > 0 else math.nan
        if previous is None or sigma_next == 0:
            extrapolated = denoised
        else:
            weight = 1 / (2 * (h_previous / h))  # 0 after a step from sigma = inf
            extrapolated = (1 + weight) * denoised - weight * previous
        x = transfer(denoiser, x, extrapolated, sigma, sigma_next)
        previous, h_previous = denoised, h
    return x


@register("dopri5", Dopri5Options, nfe=lambda sigmas: None)
@torch.no_grad()
def dopri5(
    denoiser: Denoiser,
    noise: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """Dormand-Prince 5(4), adaptive (torchdiffeq): the reference solution the fixed-step
    samplers are compared with. It integrates the probability-flow ODE in rectified-flow
    coordinates, z = x_bar / (1 + sigma) over tau = 1 / (1 + sigma), dz/dtau = (D - z) /
    (1 - tau), which is regular at sigma = inf, from the grid's first level to the process's
    sigma_min, and returns D there. NFE is set by the tolerances; `Denoiser.calls` counts it."""
    try:
        from torchdiffeq import odeint
    except ImportError as err:
        raise ImportError("dopri5 needs torchdiffeq: pip install torchdiffeq") from err
    process = denoiser.process

    def level(tau: Tensor) -> Tensor:
        return ((1 - tau) / tau).double()

    def to_x(z: Tensor, sigma: Tensor | float) -> Tensor:
        return z * (process.scale(sigma) + process.noise_std(sigma))

    def velocity(tau: Tensor, z: Tensor) -> Tensor:
        sigma = level(tau)
        return (denoiser(to_x(z, sigma), sigma) - z) / (1 - tau)

    first, last = sigmas[0], denoiser.process.sigma_min
    x = start(denoiser, noise, sigmas)
    z = x / (process.scale(first) + process.noise_std(first))
    span = torch.tensor([1 / (1 + first), 1 / (1 + last)], dtype=x.dtype, device=x.device)
    z = odeint(velocity, z, span, rtol=rtol, atol=atol, method="dopri5")[-1]
    return denoiser(to_x(z, last), last)
