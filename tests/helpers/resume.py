"""Two-epoch runs with a checkpoint after each, from scratch or resumed from one of them
(test_resume_state, test_conformance)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from genlab.callbacks.ema import EMA
from genlab.callbacks.rng_states import RNGStates
from genlab.data.memory import tensor_loader
from tests.helpers.tiny import fit

EPOCHS = 2


def train(
    make_model: Callable[[], pl.LightningModule],
    ema: bool,
    tmp_path: Path,
    resume: Path | None,
    more_callbacks: list[pl.Callback] = (),
) -> tuple[pl.LightningModule, pl.Trainer]:
    """Two epochs, a checkpoint after each (`epoch=0.ckpt`, `epoch=1.ckpt`), from `resume`,
    with `more_callbacks` after the EMA.

    The batches come from genlab's training loader (shuffled by the run's seed, 0).
    """
    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    data = tensor_loader((images, torch.arange(64) % 10), 8, True, 0, False)
    if resume:
        torch.manual_seed(1)  # another initialisation and RNG state: the checkpoint restores both
    model = make_model()
    callbacks: list[pl.Callback] = [ModelCheckpoint(tmp_path, "{epoch}", save_top_k=-1)]
    if ema:
        callbacks.append(EMA(decay=0.9))
    callbacks.extend(more_callbacks)
    callbacks.append(RNGStates())  # last, as genlab's configs keep it
    trainer = fit(
        model, 0, data, ckpt_path=str(resume) if resume else None, max_steps=-1, max_epochs=EPOCHS,
        callbacks=callbacks, enable_checkpointing=True, deterministic=True,
    )  # fmt: skip
    return model, trainer


def learning_rates(trainer: pl.Trainer) -> list[float]:
    return [group["lr"] for opt in trainer.optimizers for group in opt.param_groups]
