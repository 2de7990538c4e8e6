"""`last.ckpt` follows the training: every epoch and every `checkpoint_every_minutes`,
whether or not the monitored metric improved; best.ckpt still follows the metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from genlab.checkpoints import AtomicCheckpointIO
from genlab.train import train
from tests.helpers.runs import TINY_RUN_NO_METRICS, compose_config

TINY = TINY_RUN_NO_METRICS


def test_last_ckpt_holds_the_final_epoch_when_the_metric_stops_improving(tmp_path: Path) -> None:
    # mode=max on the VAE's validation loss, which falls epoch after epoch: the "best" stays
    # the first epoch, the case in which Lightning's save_last left last.ckpt behind.
    overrides = [*TINY, "model=vae", "trainer.max_epochs=4", "optimized_metric=val/loss",
                 "callbacks.model_checkpoint.mode=max"]  # fmt: skip
    train(compose_config("train", overrides, tmp_path))
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert best["epoch"] == 0  # the metric never improved after the first epoch
    assert (last["epoch"], last["global_step"]) == (3, 4 * 3)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]


@pytest.mark.parametrize(
    ("model", "minutes", "expected"),
    [
        ("vae", 0, [1, 2, 3]),  # 0 minutes: after every batch
        ("gan", 0, [2, 4, 6]),  # a GAN makes two optimizer steps per batch
        ("vae", 5, [3]),  # the run is shorter than the interval: only the epoch's end
    ],
)
def test_last_ckpt_is_written_on_its_own_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, minutes: int, expected: list[int]
) -> None:
    saved: list[tuple[str, int]] = []
    real_save = AtomicCheckpointIO.save_checkpoint

    def recording_save(self, checkpoint: dict[str, Any], path: str | Path, *args, **kwargs):
        saved.append((Path(path).name, checkpoint["global_step"]))
        return real_save(self, checkpoint, path, *args, **kwargs)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording_save)
    overrides = [*TINY, f"model={model}", f"checkpoint_every_minutes={minutes}"]
    train(compose_config("train", overrides, tmp_path))
    assert [step for name, step in saved if name == "last.ckpt"] == expected


def test_a_gan_resumed_from_an_epoch_end_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """The GAN steps its schedulers in its own on_train_epoch_end: the epoch's last.ckpt must
    be written after that (a Checkpoint callback), or the resumed run is one step short."""
    scheduler = "{_target_:torch.optim.lr_scheduler.ExponentialLR,_partial_:true,gamma:0.5}"
    overrides = [*TINY, "model=gan", "trainer.deterministic=true", f"model.scheduler={scheduler}"]
    train(compose_config("train", [*overrides, "trainer.max_epochs=3"], tmp_path / "reference"))
    train(compose_config("train", overrides, tmp_path / "first"))  # one epoch
    resumed = [*overrides, "trainer.max_epochs=3", f"ckpt_path={tmp_path / 'first'}"]
    train(compose_config("train", resumed, tmp_path / "resumed"))
    reference, ckpt = (
        torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)
        for name in ("reference", "resumed")
    )
    assert ckpt["lr_schedulers"] == reference["lr_schedulers"]
    for key, value in reference["state_dict"].items():
        assert torch.equal(ckpt["state_dict"][key], value), key
