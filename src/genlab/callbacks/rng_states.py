"""Random-number-generator states in checkpoints, so that a resumed run draws what the
uninterrupted run would have drawn (its noise, its dropout, its augmentations)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from genlab.utils.rng import restore_rng_states, rng_states


class RNGStates(pl.Callback):
    """Stores the Python, NumPy, torch and CUDA RNG states in every checkpoint (under
    `rng_states`) and restores them when a resumed run's first batch is about to run.

    Not at load time: Lightning calls `on_fit_start` hooks after loading, and those may
    draw random numbers (the FID callback builds its feature extractor there). Keep this
    callback last, so that no other `on_train_start` draws after the restore.
    """

    def __init__(self) -> None:
        self.resumed_states: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.resumed_states = checkpoint.get("rng_states")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumed_states is not None:
            restore_rng_states(self.resumed_states)
            self.resumed_states = None
