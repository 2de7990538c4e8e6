"""GenerativeMetrics in a real training run: schedule, logged names, checkpoint ranking."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from genlab.metrics.callback import GenerativeMetrics
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
    seconds = [float(r["val/train_seconds"]) for r in rows]  # in the FID's own row
    assert 0 < seconds[0] < seconds[1]
    assert best == pytest.approx(min(float(r["val/fid_lenet"]) for r in rows), rel=1e-6)
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


def test_train_seconds_leave_out_measuring_and_go_on_across_a_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Time-to-FID reads training time: the seconds spent measuring FID are not in it, and
    a resumed run continues from the checkpoint's count instead of starting at zero."""
    clock = [100.0]
    monkeypatch.setattr("genlab.metrics.callback.time.monotonic", lambda: clock[0])
    callback = GenerativeMetrics(n_samples=10)
    callback.started, callback.measuring_seconds = clock[0], 0.0  # what on_fit_start sets
    clock[0] += 30.0  # 30 s of training
    assert callback.train_seconds() == 30.0
    callback.measuring_seconds += 12.0  # ... then 12 s measuring FID, then 8 s of training
    clock[0] += 20.0
    assert callback.train_seconds() == 38.0
    state = callback.state_dict()
    resumed = GenerativeMetrics(n_samples=10)
    resumed.load_state_dict(state)
    resumed.started, resumed.measuring_seconds = clock[0], 0.0
    clock[0] += 5.0
    assert resumed.train_seconds() == 43.0
