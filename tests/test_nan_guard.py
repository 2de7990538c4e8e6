"""NanGuard: a NaN loss stops the run in one line and keeps its checkpoint, or is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.callbacks import NanGuard, NonFiniteLossError
from genlab.models import GANModule, VAEModule
from genlab.train import train
from genlab.utils.errors import ConfigError
from tests.helpers.nan import nan_on_training_calls, poison_gan_discriminator_loss
from tests.helpers.runs import TINY_RUN_WITHOUT_METRICS, MakeConfig

RUN = [*TINY_RUN_WITHOUT_METRICS, "metrics=none", "trainer.max_epochs=2"]


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    terms = nan_on_training_calls(VAEModule.negative_elbo_terms, bad_calls={5})  # epoch 1, batch 1
    monkeypatch.setattr(VAEModule, "negative_elbo_terms", terms)
    cfg = make_config(overrides=[*RUN, "model=vae"])
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert "train/loss = nan at epoch 1, batch 1 (global step 4)" in message
    assert f"resume with ckpt_path={last}" in message
    kept = torch.load(last, weights_only=True)  # written after epoch 0, never overwritten
    assert kept["global_step"] == 3
    assert all(torch.isfinite(w).all() for w in kept["state_dict"].values())
    # W&B's own log of the offline run: finished with a failure exit code
    (debug_log,) = Path(cfg.paths.output_dir).glob("wandb/offline-run-*/logs/debug.log")
    assert "got exitcode: 1" in debug_log.read_text()


def test_skip_leaves_the_weights_untouched_and_counts_the_steps(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_gan_discriminator_loss(monkeypatch, bad_calls={2, 3})
    before: dict[str, torch.Tensor] = {}

    def snapshot(module: GANModule, *args) -> None:
        if module.iteration == 1:  # the first poisoned batch is about to run
            before.update({k: v.clone() for k, v in module.discriminator.state_dict().items()})

    monkeypatch.setattr(GANModule, "on_train_batch_start", snapshot, raising=False)
    cfg = make_config(overrides=[*RUN, "logger=csv", "callbacks.nan_guard.action=skip"])
    train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in ckpt["state_dict"].values())
    assert ckpt["callbacks"]["NanGuard"]["skipped_steps"] == 2
    rows = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("train/skipped_steps")
    counts = [float(row.split(",")[column]) for row in rows[1:] if row.split(",")[column]]
    assert counts[0] == 0 and counts[-1] == 2


def test_without_the_guard_the_same_nan_reaches_the_weights(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: unguarded, the poisoned steps turn the weights into NaN."""
    poison_gan_discriminator_loss(monkeypatch, bad_calls={2, 3})
    cfg = make_config(overrides=[*RUN, "logger=csv", "callbacks.nan_guard=null"])
    train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    weights = ckpt["state_dict"]["discriminator.head.weight"]
    assert not torch.isfinite(weights).all()


def test_an_unknown_action_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be one of stop, skip, got 'ignore'"):
        NanGuard(action="ignore")
