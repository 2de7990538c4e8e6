"""Save and log a grid of samples from fixed noise at the end of validation epochs."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from genlab.callbacks.image_logging import log_image


class SampleGrid(pl.Callback):
    """Writes `<dirpath>/epoch_XXXX.png` and logs it as `samples/fixed_noise`.

    The latents come from a CPU generator seeded with `seed`, so every epoch and
    every run with the same seed shows the same noise and can be compared.
    """

    def __init__(
        self, dirpath: str, n: int = 64, nrow: int = 8, seed: int = 0, every_n_epochs: int = 1
    ) -> None:
        super().__init__()
        if n < 1 or every_n_epochs < 1:
            raise ValueError("callbacks.sample_grid.n and every_n_epochs must be >= 1")
        self.dirpath = Path(dirpath)
        self.n, self.nrow, self.seed, self.every_n_epochs = n, nrow, seed, every_n_epochs

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        images = pl_module.generate(self.n, generator=torch.Generator().manual_seed(self.seed))
        grid = make_grid(images.float().cpu(), nrow=self.nrow, normalize=True, value_range=(-1, 1))
        self.dirpath.mkdir(parents=True, exist_ok=True)
        save_image(grid, self.dirpath / f"epoch_{trainer.current_epoch:04d}.png")
        log_image(trainer, "samples/fixed_noise", grid, caption=f"epoch {trainer.current_epoch}")
