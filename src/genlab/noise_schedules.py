"""DDPM noise schedules: betas over T discrete timesteps and the forward marginal q(x_t | x0).

Schedules are computed in float64 and returned in float32: alpha_bar is a product of up
to a thousand factors close to 1, and the cosine betas are 1 minus ratios of nearly equal
numbers, where float32 would lose digits; the networks and samplers then read float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Ho, Jain & Abbeel 2020: beta_t linear from 1e-4 to 0.02 over T = 1000 steps."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64).float()


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t) / f(0),
    f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2), and beta_t = 1 - alpha_bar(t) / alpha_bar(t-1)
    clipped to `max_beta` (alpha_bar -> 0 at t = T would make the last beta 1)."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta).float()


def alphas_cumprod(betas: Tensor) -> Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), in float64 before rounding to float32."""
    return torch.cumprod(1 - betas.double(), dim=0).float()


SCHEDULES: dict[str, Callable[[int], Tensor]] = {"linear": linear_betas, "cosine": cosine_betas}


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """Ho et al. 2020, eq. 4: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, the forward
    marginal q(x_t | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I), for a long tensor t of
    shape (N,)."""
    abar = alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise
