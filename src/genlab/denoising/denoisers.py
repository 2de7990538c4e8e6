"""One denoiser view of every iterative family: D(x, sigma) -> predicted clean image.

A network's output F means something different in each family (the noise, the clean image,
Salimans & Ho's v, the flow's velocity, EDM's preconditioned residual), but each is an
affine function of D at a given x and sigma. EDM (Karras et al. 2022, eq. 7 and Table 1)
writes that as

    D(x_bar, sigma) = c_skip(sigma) x_bar + c_out(sigma) F(c_in(sigma) x_bar, c_noise(sigma))

for x_bar = x0 + sigma n. Here x is the process's own x = s(sigma) x_bar, and the
coefficients are taken relative to it (c_skip / s and c_in / s), which keeps them finite at
sigma = inf, where flow matching starts. A parameterisation maps (s, b = s sigma, sigma) to
(skip, out, input) with D = skip x + out F(input x, time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genlab.denoising.processes import Level, NoiseProcess

Coefficients = tuple[Any, Any, Any]  # (skip, out, input), each a float or a tensor
Parameterisation = Callable[[Tensor, Tensor, Tensor], Coefficients]  # (s, b, sigma) -> ...


def epsilon(s: Level, b: Level, sigma: Level) -> Coefficients:
    """F predicts the noise n (Ho et al. 2020): D = (x - b F) / s."""
    return 1 / s, -b / s, 1.0


def clean(s: Level, b: Level, sigma: Level) -> Coefficients:
    """F predicts x0 itself: D = F."""
    return 0.0, 1.0, 1.0


def v(s: Level, b: Level, sigma: Level) -> Coefficients:
    """F predicts v = s n - b x0 (Salimans & Ho, ICLR 2022, section 4):
    D = (s x - b F) / (s^2 + b^2), which is s x - b F on a variance-preserving process."""
    norm = s * s + b * b
    return s / norm, -b / norm, 1.0


def velocity(s: Level, b: Level, sigma: Level) -> Coefficients:
    """F is the velocity x0 - n of the rectified-flow path x = t x0 + (1 - t) n (its s + b
    = 1): D = x + (1 - t) F."""
    return 1.0, b, 1.0


def edm(sigma_data: float) -> Parameterisation:
    """EDM's preconditioning for data of std `sigma_data` (Karras et al. 2022, Table 1):
    c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2), so that F's input and target have unit variance."""

    def coefficients(s: Level, b: Level, sigma: Level) -> Coefficients:
        total = sigma * sigma + sigma_data**2
        return sigma_data**2 / total / s, sigma * sigma_data * total**-0.5, total**-0.5 / s

    return coefficients


#: the parameterisations a diffusion model's `prediction` names
PREDICTIONS: dict[str, Parameterisation] = {"epsilon": epsilon, "x0": clean, "v": v}


def expand(value: Any, x: Tensor, dtype: torch.dtype | None = None) -> Any:
    """A per-image coefficient as a tensor broadcast over x's image dimensions, in `dtype`
    (x's by default)."""
    if not isinstance(value, Tensor):
        return value
    return value.to(dtype or x.dtype).view(-1, *([1] * (x.dim() - 1)))


class Denoiser:
    """D(x, sigma): the clean image a `network(input, time) -> F` predicts from the process's
    x at level sigma (a Python float for the whole batch, or one per image).

    With `clip`, D is clamped to [-1, 1], the data's range (Ho et al.'s sampler does so).
    `calls` counts the evaluations: the NFE of a sampler.
    """

    def __init__(
        self,
        network: Callable[[Tensor, Tensor], Tensor],
        process: NoiseProcess,
        parameterisation: Parameterisation,
        clip: bool = False,
    ) -> None:
        self.network = network
        self.process = process
        self.parameterisation = parameterisation
        self.clip = clip
        self.calls = 0

    def levels(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """sigma as a float64 tensor of one level per image."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
        return sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma.double()

    def output(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Coefficients]:
        """The network's F at (x, sigma) and the coefficients that turn it into D."""
        s, b = self.process.scale(sigma), self.process.noise_std(sigma)
        skip, out, scale_in = self.parameterisation(s, b, sigma)
        time = self.process.network_time(sigma).to(x.dtype)
        return self.network(expand(scale_in, x) * x, time), (skip, out, scale_in)

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.calls += 1
        sigma = self.levels(x, sigma)
        output, (skip, out, _) = self.output(x, sigma)
        # In float64: skip x and out F nearly cancel at high noise (1 / s = 158 at DDPM's
        # t = T - 1), where float32 would leave errors of 1e-4.
        wide = torch.float64
        denoised = expand(skip, x, wide) * x.to(wide) + expand(out, x, wide) * output.to(wide)
        denoised = denoised.to(x.dtype)
        return denoised.clamp(-1.0, 1.0) if self.clip else denoised
