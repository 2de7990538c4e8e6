"""Post-hoc EMA while training (`callbacks=posthoc_ema`, genlab.callbacks.PostHocEMA): the
snapshots hold the power-function averages of the weights being trained, every
`snapshot_every` iterations and at the end; a resumed run writes the snapshots of the
uninterrupted one; a bad setting or a changed profile on resume is one line.
(The averaging and reconstruction mathematics: test_posthoc_ema.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from genlab.callbacks import PostHocEMA
from genlab.errors import ConfigError
from genlab.posthoc_ema import PowerEMA
from tests.helpers.resume import EPOCHS, train
from tests.helpers.tiny import tiny_flow, tiny_gan

SIGMA_RELS = [0.05, 0.10]
ITERATIONS = 8 * EPOCHS  # the helper's 64 images in batches of 8, two epochs
EVERY = 5
MODELS: dict[str, Callable[[], pl.LightningModule]] = {"gan": tiny_gan, "flow": tiny_flow}


class WeightTrail(pl.Callback):
    """The module's state after every training iteration."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           *args: Any) -> None:  # fmt: skip
        self.states.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def snapshots(directory: Path) -> dict[str, dict[str, Any]]:
    return {path.name: torch.load(path, weights_only=True) for path in directory.glob("*.pt")}


@pytest.mark.parametrize("name", list(MODELS))
def test_snapshots_are_the_power_averages_of_the_trained_weights(name: str, tmp_path: Path) -> None:
    trail = WeightTrail()
    posthoc = PostHocEMA(tmp_path / "snapshots", SIGMA_RELS, snapshot_every=EVERY)
    # with the fixed-decay EMA on as well: post-hoc EMA averages the trained weights
    train(MODELS[name], True, tmp_path, None, [posthoc, trail])
    written = snapshots(tmp_path / "snapshots")
    steps = [*range(EVERY, ITERATIONS + 1, EVERY), ITERATIONS]
    assert sorted(written) == sorted(f"{s:08d}-{r:g}.pt" for s in steps for r in SIGMA_RELS)
    expected = PowerEMA(SIGMA_RELS)
    for step, state in enumerate(trail.states, start=1):
        expected.update(state, step)
        if step in steps:
            for sigma_rel, average in zip(SIGMA_RELS, expected.averages, strict=True):
                snapshot = written[f"{step:08d}-{sigma_rel:g}.pt"]
                assert (snapshot["step"], snapshot["sigma_rel"]) == (step, sigma_rel)
                assert snapshot["state_dict"].keys() == state.keys()
                for key, value in average.items():
                    assert torch.equal(snapshot["state_dict"][key], value), (step, key)
    last = written[f"{ITERATIONS:08d}-0.05.pt"]["state_dict"]
    assert any(not torch.equal(last[k], v) for k, v in trail.states[-1].items())  # averaged


def test_a_resumed_run_writes_the_snapshots_of_the_uninterrupted_run(tmp_path: Path) -> None:
    # The GAN (two optimisers, batch-norm buffers in the averages): the callback's own
    # state, the averages and their step, does not depend on the family.
    def callback(run: str) -> PostHocEMA:
        return PostHocEMA(tmp_path / run / "snapshots", SIGMA_RELS, snapshot_every=EVERY)

    train(tiny_gan, False, tmp_path / "straight", None, [callback("straight")])
    train(tiny_gan, False, tmp_path / "resumed", tmp_path / "straight" / "epoch=0.ckpt",
          [callback("resumed")])  # fmt: skip
    straight, resumed = (
        snapshots(tmp_path / "straight" / "snapshots"),
        snapshots(tmp_path / "resumed" / "snapshots"),
    )
    assert resumed  # the steps after the first epoch's checkpoint
    assert set(resumed) < set(straight)
    for file, snapshot in resumed.items():
        for key, value in straight[file]["state_dict"].items():
            assert torch.equal(snapshot["state_dict"][key], value), (file, key)


@pytest.mark.parametrize(
    ("sigma_rels", "every", "message"),
    [
        ([0.5], 100, "callbacks.posthoc_ema.sigma_rels must be a non-empty list of numbers in"),
        ([], 100, "callbacks.posthoc_ema.sigma_rels must be a non-empty list"),
        ([0.05], 0, "callbacks.posthoc_ema.snapshot_every must be an integer >= 1, got 0"),
    ],
)
def test_a_bad_setting_is_one_line(
    sigma_rels: list[float], every: int, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        PostHocEMA(tmp_path, sigma_rels, snapshot_every=every)


def test_other_profiles_cannot_continue_a_runs_averages(tmp_path: Path) -> None:
    saved = PostHocEMA(tmp_path, SIGMA_RELS).state_dict()
    with pytest.raises(ConfigError, match="the profiles cannot change on resume"):
        PostHocEMA(tmp_path, [0.05, 0.2]).load_state_dict(saved)
