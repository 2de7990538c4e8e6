"""One cell of the results table: a recipe trained with one seed, then scored by genlab-eval.

A cell's numbers are stored as `results/<recipe>/<seed>.json` with the commit and the resolved
config that produced them. Its runs go to `<runs_dir>/<recipe>/<seed>/` (training) and its
`eval/` subfolder; a cell whose training was interrupted resumes from its own last.ckpt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import genlab
from genlab.config.paths import config_dir
from genlab.report.runs import read_job
from genlab.results.plan import Plan, Recipe
from genlab.runs.result import read_result
from genlab.runs.run_dir_check import holds_a_run
from genlab.utils.files import write_atomically
from genlab.utils.git import git_commit, has_uncommitted_changes

# What a cell keeps of genlab-eval's metrics.json (one checkpoint source).
EVAL_KEYS = (
    "fid",
    "kid_mean",
    "precision",
    "recall",
    "density",
    "coverage",
    "sampling_images_per_second",
    "nfe",
    "n_samples",
)
# Training overrides of every cell: a CSV log the cell reads, no console progress bar.
CELL_TRAIN_OVERRIDES = ("logger=csv", "callbacks.progress_bar=null")


@dataclass(frozen=True)
class Cell:
    recipe: Recipe
    seed: int

    @property
    def label(self) -> str:
        return f"{self.recipe.name} seed {self.seed}"

    def file(self, results_dir: Path) -> Path:
        return results_dir / self.recipe.name / f"{self.seed}.json"

    def run_dir(self, runs_dir: Path) -> Path:
        return runs_dir / self.recipe.name / str(self.seed)


class CellFailed(Exception):
    """A cell's training or evaluation ended without its numbers (the run dir says why)."""


def missing_cells(recipes: list[Recipe], seeds: tuple[int, ...], results: Path) -> list[Cell]:
    """The cells with no stored numbers: what `genlab-results` has left to run."""
    cells = [Cell(recipe, seed) for recipe in recipes for seed in seeds]
    return [cell for cell in cells if not cell.file(results).is_file()]


def genlab_command(module: str, overrides: list[str]) -> list[str]:
    """An entry point in this interpreter: the cell runs the genlab that runs it."""
    return [sys.executable, "-m", module, *overrides]


def run_logged(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        lines = log.read_text().strip().splitlines()
        raise CellFailed(
            f"{command[2]} exited with {proc.returncode}: "
            f"{lines[-1] if lines else 'no output'} (log: {log})"
        )


def train(cell: Cell, run_dir: Path) -> bool:
    """Train the cell's run unless it completed already; True when it resumed a checkpoint."""
    if (read_result(run_dir) or {}).get("status") == "completed":
        return False
    resumed = (run_dir / "checkpoints" / "last.ckpt").is_file()
    if not resumed and holds_a_run(run_dir):
        shutil.rmtree(run_dir)  # started, then stopped before its first checkpoint: nothing lost
    overrides = [
        *cell.recipe.train,
        f"seed={cell.seed}",
        *CELL_TRAIN_OVERRIDES,
        f"hydra.run.dir={run_dir}",
        *([f"ckpt_path={run_dir}"] if resumed else []),
    ]
    run_logged(genlab_command("genlab.train", overrides), run_dir.parent / f"{cell.seed}.train.log")
    return resumed


def evaluate(cell: Cell, run_dir: Path, eval_overrides: tuple[str, ...]) -> dict[str, Any]:
    """genlab-eval of the run's best checkpoint (else its last) against the test split."""
    checkpoints = run_dir / "checkpoints"
    ckpt = next(
        (p for p in (checkpoints / "best.ckpt", checkpoints / "last.ckpt") if p.is_file()), None
    )
    if ckpt is None:
        raise CellFailed(f"{cell.label}: training left no checkpoint in {checkpoints}")
    eval_dir = run_dir / "eval"
    shutil.rmtree(eval_dir, ignore_errors=True)  # an interrupted evaluation: run it again
    overrides = [
        f"ckpt_path={ckpt}",
        *eval_overrides,
        f"hydra.run.dir={eval_dir}",
        f"out_file={eval_dir / 'metrics.json'}",
    ]
    run_logged(genlab_command("genlab.eval", overrides), run_dir.parent / f"{cell.seed}.eval.log")
    scores = json.loads((eval_dir / "metrics.json").read_text())
    return {"checkpoint": ckpt.name, **{key: scores.get(key) for key in EVAL_KEYS}}


def training_numbers(run_dir: Path) -> dict[str, Any]:
    job = read_job(run_dir, run_dir.name)
    return {
        "status": job.status,
        "model": job.model,
        "fid_key": job.fid_key,
        "best_val_fid": job.best_fid(),
        "last_val_fid": job.last_fid(),
        "wall_seconds": job.wall_seconds,
    }


def measure(cell: Cell, plan: Plan, results: Path) -> dict[str, Any]:
    """Run the cell (train, evaluate) and store its numbers; returns what it stored."""
    run_dir = cell.run_dir(plan.runs_dir)
    load = os.getloadavg()[0]  # well above the CPU count: other work shared the cores
    resumed = train(cell, run_dir)
    scores = evaluate(cell, run_dir, plan.eval)
    code = Path(genlab.__file__).parent
    record = {
        "recipe": cell.recipe.name,
        "seed": cell.seed,
        "train_overrides": list(cell.recipe.train),
        "eval_overrides": list(plan.eval),
        "commit": git_commit(code),
        # the code and configs that produce the numbers (not the page this command rewrites)
        "uncommitted_changes": has_uncommitted_changes(code, code, config_dir()),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(load, 2),
        "resumed": resumed,  # the training wall time is then that of its last start only
        "train": training_numbers(run_dir),
        "eval": scores,
        "config": yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()),
    }
    text = json.dumps(record, indent=2) + "\n"
    path = cell.file(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: tmp.write_text(text))
    return record


def read_cells(
    results: Path, recipes: list[Recipe], seeds: tuple[int, ...]
) -> dict[str, list[dict[str, Any]]]:
    """The stored cells of each recipe, one per seed of `seeds` that has one, in seed order."""
    files = {
        recipe.name: [Cell(recipe, seed).file(results) for seed in seeds] for recipe in recipes
    }
    return {
        name: [json.loads(f.read_text()) for f in paths if f.is_file()]
        for name, paths in files.items()
    }
