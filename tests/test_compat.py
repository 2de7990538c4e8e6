"""Each private API genlab reads (all of them in genlab.compat) still means what it did.

An upgrade of Lightning, TensorBoard or OmegaConf that renames or changes one fails here,
naming the access, rather than in a user's run.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger

from genlab import compat
from tests.helpers.tiny import loader, tiny_gan


class RecordSteps(pl.Callback):
    """What the compat accessors say at each training batch."""

    def __init__(self) -> None:
        self.writes: list[bool] = []
        self.batches: list[int] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.writes.append(compat.lightning_writes_logs_this_step(trainer))

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.batches.append(compat.batches_that_stepped(trainer))


def test_lightning_step_counters_and_log_gate(tmp_path: Path) -> None:
    record = RecordSteps()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=5, log_every_n_steps=2,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[record], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(tiny_gan(), loader(n=40))
    assert record.writes == [False, True, False, True, False]  # (step + 1) % 2 == 0
    # a GAN steps two optimizers per batch: the batch count is not global_step
    assert record.batches == [0, 1, 2, 3, 4] and trainer.global_step == 10
    path = tmp_path / "gan.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert compat.checkpoint_batches_that_stepped(checkpoint) == 5


def test_tensorboard_file_writer_writes_events(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="", version="")
    writer = compat.tensorboard_file_writer(logger.experiment)
    writer.add_summary(torch.utils.tensorboard.summary.scalar("x", 1.0))
    writer.flush()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_config_child_leaves_interpolations_unresolved() -> None:
    cfg = OmegaConf.create({"a": {"b": "${oc.env:GENLAB_NOT_SET_ANYWHERE}"}, "l": [{"c": 1}]})
    assert str(compat.config_child(cfg.a, "b")) == "${oc.env:GENLAB_NOT_SET_ANYWHERE}"
    assert compat.config_child(cfg.l, 0) == {"c": 1}


def test_quiet_wandb_logger_drops_only_the_unset_anonymous_argument(tmp_path: Path) -> None:
    quiet = compat.QuietWandbLogger(save_dir=str(tmp_path), offline=True)
    assert "anonymous" in pl.loggers.WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init
    assert "anonymous" not in quiet._wandb_init
    assert quiet._wandb_init["dir"] == str(tmp_path)  # the other arguments are kept
    chosen = compat.QuietWandbLogger(save_dir=str(tmp_path), offline=True, anonymous=True)
    assert chosen._wandb_init["anonymous"] == "allow"
