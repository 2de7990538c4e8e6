"""DiffusionModule: denoising diffusion (DDPM, Ho, Jain & Abbeel, NeurIPS 2020).

The forward process noises an image x0 in T steps, q(x_t | x0) = N(sqrt(abar_t) x0,
(1 - abar_t) I) with abar_t = prod_{s<=t} (1 - beta_s); a network eps(x_t, t) learns to
predict the noise, with the simple loss of Ho et al. (their eq. 14)

    L = E_{t ~ U{0..T-1}, x0, eps ~ N(0, I)} || eps(x_t, t) - eps ||^2,
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps

(mean over pixels). `schedule` chooses the betas: `linear` (Ho et al., 1e-4 to 0.02) or
`cosine` (Nichol & Dhariwal, ICML 2021), which destroys information more evenly at 28x28.
Sampling runs DDIM (Song et al., ICLR 2021; `eta` = 0 deterministic) or ancestral DDPM on
`steps` timesteps evenly spaced over the T of training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.models.iterative import IterativeModule
from genlab.noise_schedules import SCHEDULES, alphas_cumprod, q_sample
from genlab.sampling import DIFFUSION_SAMPLERS, Model, ddim_timesteps, get_sampler


class DiffusionModule(IterativeModule):
    """Logs `train/loss` and `val/loss`, the epsilon-prediction loss (mean squared error per
    pixel). The network reads the timestep as t / T in [0, 1)."""

    solvers = DIFFUSION_SAMPLERS
    #: ddim's eta: 0 deterministic, 1 as stochastic as DDPM
    sampling_defaults: ClassVar[Mapping[str, Any]] = {"eta": 0.0}

    def __init__(
        self,
        net: nn.Module,
        optimizer: Any,
        num_train_steps: int = 1000,
        schedule: str = "linear",
        **options: Any,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ConfigError(
                f"model.schedule={schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}"
            )
        if num_train_steps < 2:
            raise ConfigError(f"model.num_train_steps must be >= 2, got {num_train_steps}")
        self.num_train_steps = num_train_steps
        super().__init__(net, optimizer, **options)
        self.schedule = schedule
        # Derived from the config, so not saved in checkpoints (persistent=False).
        abar = alphas_cumprod(SCHEDULES[schedule](num_train_steps))
        self.register_buffer("alphas_cumprod", abar, persistent=False)

    @property
    def max_sampling_steps(self) -> tuple[int, str]:
        return self.num_train_steps, "model.num_train_steps: the timesteps there are to visit"

    def network(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """The noise prediction at integer timesteps `t` (the net reads t / T)."""
        return self.net(x, t.to(x.dtype) / self.num_train_steps, labels)

    def objective(
        self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None = None
    ) -> Tensor:
        T = self.num_train_steps
        if generator is None:
            t = torch.randint(T, (x.shape[0],), device=x.device)
            noise = torch.randn_like(x)
        else:
            t = torch.randint(T, (x.shape[0],), generator=generator).to(x.device)
            noise = torch.randn(x.shape, generator=generator).to(x.device)
        x_t = q_sample(x, t, noise, self.alphas_cumprod)
        predicted = self.network(x_t, t, labels)
        return (predicted.float() - noise.float()).pow(2).mean()

    def integrate(
        self, model: Model, noise: Tensor, generator: torch.Generator | None, **settings: Any
    ) -> Tensor:
        times = ddim_timesteps(self.num_train_steps, settings["steps"]).to(noise.device)
        options = {"eta": settings["eta"]} if settings["solver"] == "ddim" else {}
        sampler = get_sampler(settings["solver"], "diffusion")
        return sampler(
            model, noise, times, alphas_cumprod=self.alphas_cumprod, generator=generator, **options
        )

    def solver_calls(self, settings: dict[str, Any]) -> int:
        return settings["steps"]

    def deterministic_sampling(self, **sampling: Any) -> bool:
        settings = self.sampling_settings(**sampling)
        return settings["solver"] == "ddim" and settings["eta"] == 0
