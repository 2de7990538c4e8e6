"""Keep `last.ckpt` fresh: at every epoch's end and every few minutes of training.

`last.ckpt` is what a run resumes from, and what `genlab-sample` and `genlab-eval` read
when no `best.ckpt` exists, so it must follow the training, not the metric. Lightning
2.6's `ModelCheckpoint` writes `last` only together with a new best checkpoint when it
monitors a metric, ignores `train_time_interval` under manual optimisation (the GAN), and
takes a time interval only instead of (not beside) `every_n_epochs`; this callback owns
`last.ckpt` instead, and `ModelCheckpoint` keeps the best-K by the metric.

Saves go through `trainer.save_checkpoint`, so they are atomic (`AtomicCheckpointIO`)
and carry every callback's state. It is a Lightning `Checkpoint`, so its epoch-end save
runs after the LightningModule's own `on_train_epoch_end` (the GAN steps its schedulers
there): Lightning does not call that hook again when it resumes from an epoch's end. A
mid-epoch save happens at the end of a training batch, a point Lightning resumes from
exactly (it skips the batches already done).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

from genlab.utils.errors import ConfigError

log = logging.getLogger("genlab")


class LastCheckpoint(Checkpoint):
    """Write `<dirpath>/<filename>.ckpt` after every training epoch and, within an epoch,
    after the first batch that ends `every_minutes` or more after the previous save.

    Args:
        dirpath: the run's checkpoint directory.
        every_minutes: the most training time a SIGKILL can lose (plus the batch in flight);
            0 saves after every batch.
        filename: `last`, the name `ckpt_path=<run dir>` resumes from.
    """

    def __init__(self, dirpath: str | Path, every_minutes: float = 5.0, filename: str = "last"):
        if not isinstance(every_minutes, int | float) or every_minutes < 0:
            raise ConfigError(
                f"checkpoint_every_minutes must be a number of minutes >= 0, got {every_minutes!r}"
            )
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every_seconds = 60.0 * every_minutes
        self._last_save = time.monotonic()
        self._saved_step = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Take `last.ckpt` over from any ModelCheckpoint writing into the same directory:
        two writers of one name would make Lightning number the second `last-v1.ckpt`."""
        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and self.writes_same_last(callback):
                callback.save_last = False

    def writes_same_last(self, callback: ModelCheckpoint) -> bool:
        return bool(callback.save_last and callback.dirpath) and (
            Path(callback.dirpath) == self.path.parent
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save = time.monotonic()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # the epoch-end save follows at once
        due = time.monotonic() - self._last_save >= self.every_seconds
        if trainer.world_size > 1:  # every rank must take part in a save: rank 0's clock decides
            due = trainer.strategy.broadcast(due, src=0)
        if due:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        skip = (
            trainer.fast_dev_run
            or trainer.sanity_checking
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.global_step == self._saved_step
        )
        if not skip:
            trainer.save_checkpoint(self.path)
            self._saved_step = trainer.global_step
        self._last_save = time.monotonic()
