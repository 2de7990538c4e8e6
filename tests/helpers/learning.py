"""Short seeded learning runs on the embedded digits and what they logged (test_learning,
test_recipes)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from genlab.train import train
from tests.helpers.runs import compose_config

# What every learning run shares: the CPU, CSV logs, no console output, FID on 1,000 samples.
LEARNING_RUN = [
    "trainer.accelerator=cpu",
    "logger=csv",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "trainer.enable_model_summary=false",
    "callbacks.sample_grid.interpolation_rows=0",
    "metrics.n_samples=1000",
]


def trained(tmp_path_factory: pytest.TempPathFactory, name: str, overrides: list[str]) -> Path:
    """Train `overrides` (seed 42, as every recipe) in a fresh directory; return it."""
    run_dir = tmp_path_factory.mktemp(name)
    train(compose_config("train", [*LEARNING_RUN, *overrides], run_dir))
    return run_dir


def logged(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(epoch or step, value) of every row of `csv/metrics.csv` that logged `key`."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get(key)]
    index = "epoch" if key.startswith("val/") else "step"
    return [(int(row[index]), float(row[key])) for row in rows]
