"""Save and log pictures of the model at the end of validation epochs.

Three panels, each the same inputs every epoch and in every run with the same seed, so
that epochs and runs can be compared side by side:
- `samples/fixed_noise`: a grid of samples from fixed latents (`samples/epoch_XXXX.png`);
- `samples/interpolation`: rows that walk between pairs of fixed latents
  (`samples/interpolation_XXXX.png`): a smooth walk means a smooth latent space;
- `samples/reconstructions` (models that encode, i.e. VAEs): rows of fixed
  validation images, each followed by its reconstruction (`samples/reconstruction_XXXX.png`).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import save_image

from genlab.callbacks.image_logging import log_image
from genlab.errors import ConfigError
from genlab.models.capabilities import Encodes
from genlab.visualize import class_per_row, latent_interpolation, reconstructions, to_grid


class SampleGrid(pl.Callback):
    """Writes the panels of the module docstring into `dirpath` and logs them.

    Args:
        dirpath: where the PNGs go.
        n: samples in the fixed-noise grid; nrow: images per row of the grids.
        seed: seeds the fixed latents.
        every_n_epochs: after every N-th validation.
        interpolation_rows: rows of the interpolation strip (0: none); interpolation_steps:
            images per row.
        reconstructions: validation images to reconstruct (0: none; only models with an
            encoder).
    """

    def __init__(
        self,
        dirpath: str,
        n: int = 64,
        nrow: int = 8,
        seed: int = 0,
        every_n_epochs: int = 1,
        interpolation_rows: int = 8,
        interpolation_steps: int = 10,
        reconstructions: int = 32,
    ) -> None:
        super().__init__()
        if n < 1 or every_n_epochs < 1 or min(interpolation_rows, reconstructions) < 0:
            raise ConfigError(
                "callbacks.sample_grid.n and every_n_epochs must be >= 1, interpolation_rows "
                f"and reconstructions >= 0; got {n}, {every_n_epochs}, {interpolation_rows}, "
                f"{reconstructions}"
            )
        self.dirpath = Path(dirpath)
        self.n, self.nrow, self.seed, self.every_n_epochs = n, nrow, seed, every_n_epochs
        self.interpolation_rows, self.interpolation_steps = interpolation_rows, interpolation_steps
        self.reconstructions = reconstructions

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        epoch = trainer.current_epoch
        images = pl_module.generate(
            self.n,
            generator=torch.Generator().manual_seed(self.seed),
            labels=class_per_row(pl_module, self.n, self.nrow),
            **pl_module.validation_sampling,
        )
        self._save_and_log(trainer, "fixed_noise", f"epoch_{epoch:04d}", to_grid(images, self.nrow))
        if self.interpolation_rows:
            strip = latent_interpolation(
                pl_module, self.interpolation_rows, self.interpolation_steps, self.seed
            )
            self._save_and_log(trainer, "interpolation", f"interpolation_{epoch:04d}", strip)
        real = self._validation_images(trainer)
        if real is not None and isinstance(pl_module, Encodes):
            labels = self._validation_labels(trainer) if pl_module.conditional else None
            panel = reconstructions(pl_module, real, self.nrow, labels)
            self._save_and_log(trainer, "reconstructions", f"reconstruction_{epoch:04d}", panel)

    def _validation_images(self, trainer: pl.Trainer) -> Tensor | None:
        """The first `reconstructions` validation images (the same ones every epoch)."""
        datamodule = trainer.datamodule
        if not self.reconstructions or not hasattr(datamodule, "real_images"):
            return None
        return datamodule.real_images("val")[: self.reconstructions]

    def _validation_labels(self, trainer: pl.Trainer) -> Tensor:
        """The labels of `_validation_images`, which a conditional VAE encodes and decodes with."""
        return trainer.datamodule.real_labels("val")[: self.reconstructions]

    def _save_and_log(self, trainer: pl.Trainer, key: str, filename: str, grid: Tensor) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        save_image(grid, self.dirpath / f"{filename}.png")
        log_image(trainer, f"samples/{key}", grid, caption=f"epoch {trainer.current_epoch}")
