"""Lightning's rich progress bar, brought up to date every few batches instead of every one."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar

from genlab.errors import ConfigError


class IntervalProgressBar(RichProgressBar):
    """RichProgressBar whose training bar and scalars are updated every `every_n_batches`
    batches (and at each epoch's last one).

    RichProgressBar updates its task and its text after every batch (`refresh_rate` only
    limits the redraws), and the training scalars it shows are those logged with
    `prog_bar=True`, which Lightning turns into Python numbers after every batch, logged
    in it or not: on a GPU, a host-device sync per value and batch (Lightning issue
    #21232). genlab's models log their `train/` scalars without `prog_bar`; this bar
    reads them from the trainer's callback metrics when it updates (they change only on
    the steps that log, every `trainer.log_every_n_steps`).
    """

    def __init__(self, every_n_batches: int = 10, **kwargs: Any) -> None:
        if every_n_batches < 1:
            raise ConfigError(
                f"callbacks.progress_bar.every_n_batches must be >= 1, got {every_n_batches}"
            )
        super().__init__(**kwargs)
        self.every_n_batches = every_n_batches
        self._not_shown: int | None = None  # the last batch index, until the bar shows it

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        done = batch_idx + 1
        self._not_shown = batch_idx
        if done % self.every_n_batches == 0 or done >= self.total_train_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            self._not_shown = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._not_shown is not None:  # the epoch stopped between two updates (max_steps)
            super().on_train_batch_end(trainer, pl_module, None, None, self._not_shown)
            self._not_shown = None
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Lightning's items (the logger's version, `prog_bar` values), then the `train/`
        scalars as numbers, copied to the host together."""
        names = [name for name in trainer.callback_metrics if name.startswith("train/")]
        values = trainer.callback_metrics
        numbers = torch.stack([values[name].float() for name in names]).tolist() if names else []
        scalars = dict(zip(names, numbers, strict=True))
        return super().get_metrics(trainer, pl_module) | scalars | monitored(trainer)


def monitored(trainer: pl.Trainer) -> dict[str, float]:
    """The metric that ranks best.ckpt (the run's FID when metrics are on), as last
    measured, and its best value so far; nothing before it is first measured."""
    ranking = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
    if not ranking or ranking[0].monitor not in trainer.callback_metrics:
        return {}
    checkpoint: ModelCheckpoint = ranking[0]
    last = float(trainer.callback_metrics[checkpoint.monitor])
    measured = (
        [last]
        if checkpoint.best_model_score is None
        else [last, float(checkpoint.best_model_score)]
    )
    finite = [value for value in measured if math.isfinite(value)]
    shown = {checkpoint.monitor: last}
    if finite:
        shown[f"best {checkpoint.monitor}"] = (min if checkpoint.mode == "min" else max)(finite)
    return shown
