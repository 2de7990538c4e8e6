"""Noise processes: x = s(sigma) (x0 + sigma n), n ~ N(0, I), EDM's eq. 4 (Karras et al.,
NeurIPS 2022) with the noise level sigma as the time.

Flow matching, DDPM and EDM differ here only in the scale s(sigma):

- rectified flow (Liu et al. 2023), x_t = t x0 + (1 - t) n: sigma = (1 - t) / t, s = t;
- variance preserving, DDPM's x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) n (Ho et al. 2020):
  sigma = sqrt((1 - abar_t) / abar_t), s = sqrt(abar_t) = 1 / sqrt(1 + sigma^2);
- variance exploding, EDM's x = x0 + sigma n: s = 1.

Every quantity is a plain function of sigma that takes a Python float or a tensor, and a
process keeps its tables as Python floats, not buffers: a sampler's loop then runs on Python
numbers, which `torch.export` unrolls into a program (genlab-export). `noise_std(sigma) =
s(sigma) sigma` is computed so that it is finite at sigma = inf, the pure noise at flow
matching's t = 0, where s = 0.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor

Level = TypeVar("Level", float, Tensor)  # a noise level: a Python float or a tensor of them


class NoiseProcess(ABC):
    """x = s(sigma) (x0 + sigma n) for one family.

    `sigma_min`/`sigma_max` bound the finite levels that the Karras and exponential grids
    span; a family's own grid may start above (flow matching starts at sigma = inf).
    """

    sigma_min: float
    sigma_max: float

    @abstractmethod
    def scale(self, sigma: Level) -> Level:
        """s(sigma): the data's factor in x (1 at sigma = 0)."""

    @abstractmethod
    def noise_std(self, sigma: Level) -> Level:
        """s(sigma) sigma: the noise's factor in x, finite at sigma = inf."""

    @abstractmethod
    def network_time(self, sigma: Tensor) -> Tensor:
        """The time input the family's network was trained to read at level sigma."""

    @abstractmethod
    def own_grid(self, steps: int) -> list[float]:
        """The family's own `steps`-interval grid: decreasing levels ending at 0."""

    def start_std(self, sigma: float) -> float:
        """The std of the noise a sampler starts from at level sigma (x's std with the data
        term dropped)."""
        return self.noise_std(sigma)


class RectifiedFlow(NoiseProcess):
    """x_t = t x0 + (1 - t) n (t = 1 data, t = 0 noise): sigma = (1 - t) / t, s = t.

    Grids other than the own one span EDM's range, t from 1 / 81 to 0.998."""

    sigma_min = 0.002
    sigma_max = 80.0

    def scale(self, sigma: Level) -> Level:
        return 1 / (1 + sigma)

    def noise_std(self, sigma: Level) -> Level:
        return 1 / (1 + reciprocal(sigma))

    def network_time(self, sigma: Tensor) -> Tensor:
        return 1 / (1 + sigma)

    def own_grid(self, steps: int) -> list[float]:
        """t uniform from 0 to 1, as the flow ODE's Euler steps (sigma = inf, ..., 0)."""
        times = [i / steps for i in range(steps + 1)]
        return [math.inf if t == 0 else (1 - t) / t for t in times]


class VariancePreserving(NoiseProcess):
    """DDPM's discrete forward process of T steps from its alpha_bar (Ho et al. 2020):
    sigma_t = sqrt((1 - abar_t) / abar_t), s = 1 / sqrt(1 + sigma^2).

    The network reads the timestep over T; between two timesteps (a Karras grid's levels)
    the timestep is interpolated in log sigma, as k-diffusion's `DiscreteSchedule` does.
    """

    def __init__(self, alphas_cumprod: Sequence[float]) -> None:
        abar = [float(a) for a in alphas_cumprod]
        self.sigmas = [math.sqrt((1 - a) / a) for a in abar]  # increasing with t
        self.log_sigmas = [math.log(s) for s in self.sigmas]
        self.num_steps = len(abar)
        self.sigma_min, self.sigma_max = self.sigmas[0], self.sigmas[-1]

    def scale(self, sigma: Level) -> Level:
        return (1 + sigma**2) ** -0.5

    def noise_std(self, sigma: Level) -> Level:
        return (1 + reciprocal(sigma) ** 2) ** -0.5

    def start_std(self, sigma: float) -> float:
        """1: Ho et al. draw x_T from N(0, I), the process's limit (abar_T is nearly 0)."""
        return 1.0

    def timestep(self, sigma: Tensor) -> Tensor:
        """The (fractional) timestep of each level, interpolated in log sigma."""
        log_sigmas = torch.tensor(self.log_sigmas, dtype=torch.float64, device=sigma.device)
        log_sigma = sigma.double().log()
        low = (log_sigma[None, :] >= log_sigmas[:, None]).cumsum(0).argmax(0)
        low = low.clamp(max=self.num_steps - 2)
        w = ((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
        return (1 - w) * low + w * (low + 1)

    def network_time(self, sigma: Tensor) -> Tensor:
        return self.timestep(sigma) / self.num_steps

    def own_grid(self, steps: int) -> list[float]:
        """`steps` timesteps evenly spaced from T - 1 down to 0 (DDIM's strided schedule,
        Song et al. 2021), then clean data."""
        return [self.sigmas[t] for t in strided_timesteps(self.num_steps, steps)] + [0.0]


class VarianceExploding(NoiseProcess):
    """EDM's x = x0 + sigma n (s = 1) over [sigma_min, sigma_max]; its own grid is Karras'."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> None:
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho

    def scale(self, sigma: Level) -> Level:
        return torch.ones_like(sigma) if isinstance(sigma, Tensor) else 1.0

    def noise_std(self, sigma: Level) -> Level:
        return sigma

    def network_time(self, sigma: Tensor) -> Tensor:
        """EDM's c_noise = ln(sigma) / 4 (its Table 1)."""
        return sigma.log() / 4

    def own_grid(self, steps: int) -> list[float]:
        from genlab.denoising.grids import karras

        return karras(self.sigma_min, self.sigma_max, steps, self.rho)


def strided_timesteps(num_train_steps: int, steps: int) -> list[int]:
    """`steps` timesteps evenly spaced from T - 1 down to 0, rounded half to even (Song et
    al. 2021), in Python arithmetic so that `torch.export` sees constants."""
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"steps must be in [1, {num_train_steps}], got {steps}")
    if steps == 1:
        return [num_train_steps - 1]
    return [round((num_train_steps - 1) * (1 - i / (steps - 1))) for i in range(steps)]


def reciprocal(sigma: Level) -> Level:
    """1 / sigma, inf at 0 for a Python float as for a tensor."""
    if isinstance(sigma, Tensor):
        return 1 / sigma
    return math.inf if sigma == 0 else 1 / sigma
