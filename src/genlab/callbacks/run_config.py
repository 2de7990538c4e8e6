"""Store the run's resolved config inside every checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

import genlab


class StoreRunConfig(pl.Callback):
    """Adds `genlab_config` (the resolved Hydra config), `genlab_version` and, when the run
    logs to W&B, `wandb_run_id` to checkpoints.

    A checkpoint is then self-describing: `genlab-sample` and `genlab-eval` rebuild
    the exact networks from it, with no need for the run directory, and a run resumed
    from it continues the same W&B run.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["genlab_config"] = self.config
        checkpoint["genlab_version"] = genlab.__version__
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint["wandb_run_id"] = logger.version
