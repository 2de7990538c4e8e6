"""EDMModule: "Elucidating the Design Space of Diffusion-Based Generative Models" (Karras,
Aittala, Aila & Laine, NeurIPS 2022).

The variance-exploding process x = x0 + sigma n with the network preconditioned so that its
input and target have unit variance at every level (Table 1):

    D(x, sigma) = c_skip x + c_out F(c_in x, c_noise),
    c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4,

trained at levels ln(sigma) ~ N(P_mean, P_std^2) with the loss weight
lambda(sigma) = 1 / c_out^2 (section 5), which makes the loss a plain mean squared error
on F's target (x0 - c_skip x) / c_out (eq. 8). Its own sampling grid is eq. 5's (rho = 7)
over [sigma_min, sigma_max], sampled by Heun's method (Algorithm 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.denoising.denoisers import Denoiser, edm, expand
from genlab.denoising.processes import VarianceExploding
from genlab.errors import ConfigError
from genlab.models.iterative import IterativeModule


class EDMModule(IterativeModule):
    """Logs `train/loss` and `val/loss`, EDM's weighted denoising loss (mean per pixel)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Any,
        sigma_data: float = 0.5,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        **options: Any,
    ) -> None:
        for key, value in (
            ("sigma_data", sigma_data),
            ("p_std", p_std),
            ("sigma_min", sigma_min),
            ("rho", rho),
        ):
            if not value > 0:
                raise ConfigError(f"model.{key} must be > 0, got {value}")
        if not sigma_max > sigma_min:
            raise ConfigError(
                f"model.sigma_max must exceed model.sigma_min, got {sigma_max} <= {sigma_min}"
            )
        super().__init__(net, optimizer, **options)
        self.sigma_data, self.p_mean, self.p_std = sigma_data, p_mean, p_std
        self.process = VarianceExploding(sigma_min, sigma_max, rho)
        self.parameterisation = edm(sigma_data)

    def objective(
        self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None = None
    ) -> Tensor:
        if generator is None:
            normal, noise = torch.randn(x.shape[0], device=x.device), torch.randn_like(x)
        else:
            normal = torch.randn(x.shape[0], generator=generator).to(x.device)
            noise = torch.randn(x.shape, generator=generator).to(x.device)
        sigma = (self.p_mean + self.p_std * normal.double()).exp()
        denoiser = Denoiser(
            lambda inputs, time: self.net(inputs, time, labels), self.process, self.parameterisation
        )
        noisy = x + noise * sigma.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        output, (skip, out, _) = denoiser.output(noisy, sigma)
        target = (x - expand(skip, x) * noisy) / expand(out, x)
        return (output.float() - target.float()).pow(2).mean()
