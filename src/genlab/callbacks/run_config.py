"""Store the run's resolved config inside every checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

import genlab


class StoreRunConfig(pl.Callback):
    """Adds `genlab_config` (the resolved Hydra config) and `genlab_version` to checkpoints.

    A checkpoint is then self-describing: `genlab-sample` and `genlab-eval` rebuild
    the exact networks from it, with no need for the run directory.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["genlab_config"] = self.config
        checkpoint["genlab_version"] = genlab.__version__
