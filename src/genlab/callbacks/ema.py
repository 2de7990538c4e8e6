"""An exponential moving average (EMA) of the weights whose decay ramps up from zero.

theta_ema <- beta_n * theta_ema + (1 - beta_n) * theta after the n-th update, with
beta_n = min(decay, (1 + n) / (10 + n)): the warm-up of TensorFlow's
`ExponentialMovingAverage(num_updates=...)`, in the spirit of StyleGAN's EMA ramp-up
(Karras et al. 2020); the first update copies the weights. With a constant beta = 0.999
the average of a 1,750-step run still holds 0.999^1750 = 17% of the untrained first
weights, and its samples are noise; with the ramp the average forgets them at once and
covers about the last tenth of the run until beta_n reaches `decay` (after 8,990
updates for 0.999, 890 for 0.99, 170 for 0.95).

Built on Lightning's `WeightAveraging`, which swaps the averaged weights in for
validation, sample grids and FID, writes them as the checkpoint's `state_dict` (so
`genlab-sample` and `genlab-eval` use them) and keeps the trained weights beside them for
resuming. It averages the whole LightningModule, a GAN's discriminator included: the
callback swaps and checkpoints the module as one, so validation's `val/d_*` come from
the averaged pair; the discriminator's average costs one more multiply-add per weight
and step. With `use_buffers` the batch-norm running statistics are averaged like the
weights (Lightning's default), so the averaged generator in eval mode normalises with
the average of the statistics its recent weights produced.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch import Tensor

from genlab.errors import ConfigError

AverageFn = Callable[[Tensor, Tensor, Tensor | int], Tensor]


def ramped_decay(decay: float, num_averaged: Tensor | int) -> Tensor:
    """min(decay, (1 + n) / (10 + n)) after `num_averaged` = n updates, as a tensor."""
    n = torch.as_tensor(num_averaged, dtype=torch.float32)
    return torch.clamp((1 + n) / (10 + n), max=decay)


def ema_avg_fn(decay: float, ramp_up: bool = True) -> AverageFn:
    """The per-tensor update `torch.optim.swa_utils.AveragedModel` calls as `avg_fn`."""

    @torch.no_grad()
    def update(averaged: Tensor, current: Tensor, num_averaged: Tensor | int) -> Tensor:
        beta = ramped_decay(decay, num_averaged).to(averaged.device) if ramp_up else decay
        return beta * averaged + (1 - beta) * current

    return update


class EMA(WeightAveraging):
    """EMA of the weights after every training iteration, with the decay ramped up.

    `decay`: the largest beta (the old average's weight per update); `ramp_up`: ramp beta
    as min(decay, (1 + n) / (10 + n)) (False: beta = decay from the first update, which
    keeps the first weights in the average for several times 1 / (1 - decay) updates).
    `use_buffers`: average the batch-norm running statistics too.
    """

    def __init__(
        self, decay: float = 0.999, ramp_up: bool = True, use_buffers: bool = True
    ) -> None:
        if not 0 <= decay < 1:
            raise ConfigError(f"callbacks.ema.decay must be in [0, 1), got {decay}")
        super().__init__(use_buffers=use_buffers, avg_fn=ema_avg_fn(decay, ramp_up))
        self.decay = decay
        self.ramp_up = ramp_up
