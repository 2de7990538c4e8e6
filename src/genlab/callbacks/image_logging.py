"""Send one image to every logger that takes images (W&B, TensorBoard); CSV takes none."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

from genlab.compat import batches_that_stepped


def logging_step(trainer: pl.Trainer) -> int:
    """The step Lightning stamps on logged metrics: training batches, not optimizer steps.

    A GAN makes two optimizer steps per batch, so `trainer.global_step` would put
    images at twice the x-position of the losses logged at the same moment.
    """
    return batches_that_stepped(trainer)


def log_image(trainer: pl.Trainer, key: str, image: Tensor, caption: str = "") -> None:
    """Log a (C, H, W) float image in [0, 1] under `key` at the current logging step."""
    step = logging_step(trainer)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step, caption=[caption])
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step)
