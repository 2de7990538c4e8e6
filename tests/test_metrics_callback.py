"""GenerativeMetrics in a real training run: schedule, logged names, checkpoint ranking."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from genlab.train import train
from tests.helpers.runs import TINY_RUN


def test_every_n_epochs_measures_the_first_validation_then_every_nth(
    make_config: Callable[..., DictConfig],
) -> None:
    cfg = make_config(
        overrides=[*TINY_RUN, "logger=csv", "trainer.max_epochs=3", "metrics.every_n_epochs=2"]
    )
    best = train(cfg)  # epoch 2 logs no FID: the checkpoint ranks by the last value
    run_dir = Path(cfg.paths.output_dir)
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/fid_lenet")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(float(r["val/n_samples"]) == 100 for r in rows)
    assert {"val/kid_lenet", "val/kid_std_lenet", "val/is_lenet"} <= rows[0].keys()
    assert best == pytest.approx(min(float(r["val/fid_lenet"]) for r in rows), rel=1e-6)
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
