"""DiffusionModule: denoising diffusion (DDPM, Ho, Jain & Abbeel, NeurIPS 2020).

The forward process noises an image x0 in T steps, q(x_t | x0) = N(sqrt(abar_t) x0,
(1 - abar_t) I) with abar_t = prod_{s<=t} (1 - beta_s); a network F(x_t, t) learns to
predict, by `prediction`,

- `epsilon`: the noise, with the simple loss of Ho et al. (their eq. 14),
  L = E_{t ~ U{0..T-1}, x0, eps} || F(x_t, t) - eps ||^2,
  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps;
- `x0`: the clean image;
- `v`: v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho, ICLR 2022, section 4),

each as a mean over pixels. `loss_weighting: min_snr` weights each image by min-SNR-gamma
(Hang et al., ICCV 2023, eq. 7 and section 3.4): min(SNR_t, gamma) over SNR_t for epsilon,
min(SNR_t, gamma) for x0, min(SNR_t, gamma) / (SNR_t + 1) for v, SNR_t = abar / (1 - abar),
which stops the easy low-noise steps from dominating training.

`schedule` chooses the betas: `linear` (Ho et al., 1e-4 to 0.02) or `cosine` (Nichol &
Dhariwal, ICML 2021), which destroys information more evenly at 28x28. In the denoiser view
(`genlab.denoising`) this is the variance-preserving process, sigma_t = sqrt((1 - abar_t) /
abar_t), and every sampler serves it; its own grid is DDIM's strided timesteps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.denoising.denoisers import PREDICTIONS
from genlab.denoising.processes import VariancePreserving
from genlab.errors import ConfigError
from genlab.models.iterative import IterativeModule
from genlab.noise_schedules import SCHEDULES, alphas_cumprod, q_sample

WEIGHTINGS = ("none", "min_snr")


class DiffusionModule(IterativeModule):
    """Logs `train/loss` and `val/loss`, the prediction's loss (mean squared error per
    pixel, weighted per image by `loss_weighting`). The network reads the timestep as t / T
    in [0, 1)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Any,
        num_train_steps: int = 1000,
        schedule: str = "linear",
        prediction: str = "epsilon",
        loss_weighting: str = "none",
        min_snr_gamma: float = 5.0,
        clip_denoised: bool = True,
        **options: Any,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ConfigError(
                f"model.schedule={schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}"
            )
        if num_train_steps < 2:
            raise ConfigError(f"model.num_train_steps must be >= 2, got {num_train_steps}")
        if prediction not in PREDICTIONS:
            raise ConfigError(
                f"model.prediction={prediction!r} is unknown; choose one of "
                f"{', '.join(PREDICTIONS)}"
            )
        if loss_weighting not in WEIGHTINGS:
            raise ConfigError(
                f"model.loss_weighting={loss_weighting!r} is unknown; choose one of "
                f"{', '.join(WEIGHTINGS)}"
            )
        if not min_snr_gamma > 0:
            raise ConfigError(f"model.min_snr_gamma must be > 0, got {min_snr_gamma}")
        self.num_train_steps = num_train_steps
        super().__init__(net, optimizer, clip_denoised=clip_denoised, **options)
        self.schedule = schedule
        self.prediction = prediction
        self.parameterisation = PREDICTIONS[prediction]
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = min_snr_gamma
        # Derived from the config, so not saved in checkpoints (persistent=False).
        abar = alphas_cumprod(SCHEDULES[schedule](num_train_steps))
        self.register_buffer("alphas_cumprod", abar, persistent=False)
        self.process = VariancePreserving(abar.double().tolist())

    @property
    def max_sampling_steps(self) -> tuple[int, str]:
        return self.num_train_steps, "model.num_train_steps: the timesteps there are to visit"

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
        predicted = self.net(x_t, t.to(x.dtype) / T, labels)
        error = (predicted.float() - self.target(x, noise, t).float()).pow(2)
        if self.loss_weighting == "none":
            return error.mean()
        return (error.flatten(1).mean(1) * self.min_snr_weight(t)).mean()

    def target(self, x: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network regresses at timesteps t: the `prediction`."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "x0":
            return x
        abar = self.alphas_cumprod.to(x.device)[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return abar.sqrt() * noise - (1 - abar).sqrt() * x

    def min_snr_weight(self, t: Tensor) -> Tensor:
        """Hang et al. 2023's weight per image at timesteps t, for the `prediction`."""
        abar = self.alphas_cumprod.to(t.device)[t].double()
        snr = abar / (1 - abar)
        clipped = snr.clamp(max=self.min_snr_gamma)
        weight = {"epsilon": clipped / snr, "x0": clipped, "v": clipped / (snr + 1)}
        return weight[self.prediction].float()
