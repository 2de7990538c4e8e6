"""Find the runs under a run or sweep directory and read what they wrote, without re-running.

A report must survive the runs a user actually has: killed jobs without `result.yaml`,
jobs that failed before logging a line, half-written CSV files. Each such gap becomes a
`-` or a status in the report, never a crash; only a directory that holds no run at all
is the user's mistake.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genlab.errors import GenlabError
from genlab.runs.result import RESULT_FILE, read_result
from genlab.runs.sweep_summary import varying_overrides

METRICS_CSV = Path("csv") / "metrics.csv"
VAE_LOSS_TERMS = ("train/recon", "train/kl")  # the two terms of the VAE loss, nats per image


@dataclass
class Series:
    """One logged scalar: the rows of metrics.csv where its cell is filled."""

    steps: list[int] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)  # None: a row logged between epochs
    values: list[float] = field(default_factory=list)


@dataclass
class Job:
    """What one run (or one sweep job) left on disk; None and "" where it left nothing."""

    label: str
    dir: Path
    overrides: str
    status: str
    wall_seconds: float | None
    error: str
    model: str | None  # class name of model._target_, e.g. "GANModule"
    metrics: dict[str, Series]
    final_samples: Path | None
    eval_fid: float | None

    @property
    def is_vae(self) -> bool:
        return self.model == "VAEModule"

    @property
    def fid_key(self) -> str | None:
        """`val/fid` (Inception) or `val/fid_<extractor>`: whichever this run logged."""
        keys = [key for key in self.metrics if key == "val/fid" or key.startswith("val/fid_")]
        return keys[0] if keys else None

    @property
    def loss_keys(self) -> list[str]:
        """Training losses: every `train/*loss*` column, then the VAE loss's two terms."""
        losses = [key for key in self.metrics if key.startswith("train/") and "loss" in key]
        return losses + [key for key in VAE_LOSS_TERMS if key in self.metrics]

    @property
    def fid(self) -> Series | None:
        return self.metrics[self.fid_key] if self.fid_key else None

    def best_fid(self) -> float | None:
        return min(self.fid.values) if self.fid else None

    def last_fid(self) -> float | None:
        return self.fid.values[-1] if self.fid else None

    def final_loss(self, key: str) -> float | None:
        series = self.metrics.get(key)
        return series.values[-1] if series else None


def fid_features(fid_key: str) -> str:
    """`val/fid` -> "Inception features", `val/fid_lenet` -> "LeNet features"."""
    name = fid_key.removeprefix("val/fid").removeprefix("_") or "inception"
    return {"inception": "Inception", "lenet": "LeNet"}.get(name, name) + " features"


def read_metrics(path: Path) -> dict[str, Series]:
    """Lightning's CSVLogger file as one Series per column; train and val rows are sparse."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    series: dict[str, Series] = {}
    for row in rows:
        epoch = row.get("epoch")
        for key, cell in row.items():
            if key in ("step", "epoch") or key is None or not cell:
                continue
            value = float(cell)
            if not math.isfinite(value):  # a diverged run logs nan/inf: show the finite part
                continue
            points = series.setdefault(key, Series())
            points.steps.append(int(float(row["step"])))
            points.epochs.append(int(float(epoch)) if epoch else None)
            points.values.append(value)
    return series


def last_sample_grid(run_dir: Path) -> Path | None:
    """The grid of the last validation epoch (`samples/epoch_XXXX.png`, zero-padded)."""
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    return grids[-1] if grids else None


def model_class(run_dir: Path) -> str | None:
    """`model._target_` of the saved config, to tell a VAE (losses in nats) from a GAN."""
    try:
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        return str(config["model"]["_target_"]).rsplit(".", 1)[-1]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def eval_fid(run_dir: Path) -> float | None:
    """FID from a `metrics.json` that genlab-eval wrote into the run directory, if any."""
    try:
        return float(json.loads((run_dir / "metrics.json").read_text())["fid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def command_line_overrides(run_dir: Path, result: dict[str, Any]) -> str:
    """The run's overrides as typed, from `.hydra/overrides.yaml` (or the sweep's result)."""
    try:
        return " ".join(
            map(str, yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()))
        )
    except (OSError, yaml.YAMLError, TypeError):
        return str(result.get("overrides") or "")


def read_job(run_dir: Path, label: str) -> Job:
    """Everything the report shows about one run; what is missing or unreadable stays empty."""
    problems = []
    try:
        result = read_result(run_dir) or {}
    except (OSError, yaml.YAMLError) as err:
        result, problems = {}, [f"{RESULT_FILE} unreadable: {err}".splitlines()[0]]
    try:
        metrics = read_metrics(run_dir / METRICS_CSV)
    except FileNotFoundError:
        metrics, problems = {}, [*problems, f"no {METRICS_CSV.as_posix()}"]
    except (OSError, csv.Error, ValueError, KeyError, TypeError) as err:  # a mangled file
        metrics, problems = {}, [*problems, f"{METRICS_CSV.as_posix()} unreadable: {err}"]
    wall = result.get("wall_seconds")
    return Job(
        label=label,
        dir=run_dir,
        overrides=command_line_overrides(run_dir, result),
        status=str(result.get("status", "unknown")),
        wall_seconds=None if wall is None else float(wall),
        error="; ".join(filter(None, [str(result.get("error") or ""), *problems])),
        model=model_class(run_dir),
        metrics=metrics,
        final_samples=last_sample_grid(run_dir),
        eval_fid=eval_fid(run_dir),
    )


def is_run_dir(path: Path) -> bool:
    """A directory that genlab-train wrote: its config, its metrics or its result."""
    return any((path / name).exists() for name in (".hydra", METRICS_CSV, RESULT_FILE))


def job_order(path: Path) -> tuple[bool, int, str]:
    """Sweep jobs by number (2 before 10), then other run directories by name."""
    digits = path.name.isdigit()
    return (not digits, int(path.name) if digits else 0, path.name)


def find_jobs(run: Path) -> list[Job]:
    """One run directory, or each run directory directly inside `run` (a sweep's jobs).

    Raises GenlabError when `run` is missing or no run in it logged a metrics.csv.
    """
    if not run.is_dir():
        raise GenlabError(f"{run} is not a directory: give a run or sweep directory under outputs/")
    if (run / METRICS_CSV).is_file() or (run / ".hydra").is_dir():
        dirs = [run]
    else:
        dirs = sorted((d for d in run.iterdir() if d.is_dir() and is_run_dir(d)), key=job_order)
    if not any((d / METRICS_CSV).is_file() for d in dirs):
        raise GenlabError(
            f"{run} holds no run: no csv/metrics.csv in it or in its subdirectories; give a run "
            "directory (outputs/train/<date>/<time>_<id>) or a sweep directory "
            "(outputs/train/multirun/<date>/<time>_<id>)"
        )
    jobs = [read_job(d, d.name) for d in dirs]
    rows = [{"overrides": job.overrides} for job in jobs]
    for job, changed in zip(jobs, varying_overrides(rows), strict=True):
        job.overrides = changed
    return jobs
