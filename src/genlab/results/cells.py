"""One cell of the results table: a recipe trained with one seed, then scored by genlab-eval.

A cell scores its final weights (last.ckpt) and, as a second labelled number, the checkpoint
chosen on validation FID (best.ckpt), both against the held-out test split with the plan's
genlab-eval settings (the same latent seeds for every recipe and seed). Where the plan asks
for post-hoc EMA, the cell trains with its snapshots (callbacks `posthoc_ema` added to the
recipe's own), genlab-ema rebuilds the plan's lengths and scores them beside the live
weights on the plan's choice split (validation), and the length it chooses is scored on the
test split as the final weights are: a third number at no extra training. It keeps the whole
metrics.json of each, the validation FID curve against training seconds (time-to-FID) and the
regime it trained in (batches, training images, wall time).

A cell's numbers are stored as `results/<recipe>/<seed>.json` with the commit and the resolved
config that produced them. Its runs go to `<runs_dir>/<recipe>/<seed>/` (training) and its
`eval_final/` and `eval_best/` subfolders, their logs beside it (`<seed>.train.log`, appended
to by every attempt), measured under the lock `<seed>.lock`; a cell whose training was
interrupted resumes from its own last.ckpt. The floor row (real training images scored as
samples are) is `results/floor.json`.

A stored file that cannot be read (not JSON, truncated, or without the keys the page reads,
of the types it reads) counts as not measured: the page leaves it out, genlab-results names
it in one line and measures the cell again.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from rich import get_console

import genlab
from genlab.checkpoints import read_checkpoint, run_datamodule
from genlab.compat import checkpoint_batches_that_stepped
from genlab.config.compose import compose_config
from genlab.config.paths import config_dir
from genlab.errors import ConfigError, first_line
from genlab.posthoc_ema_cli import posthoc_checkpoint_name
from genlab.posthoc_ema_sweep import best_length
from genlab.report.runs import Series, read_job
from genlab.results.children import CHILDREN
from genlab.results.plan import Plan, PostHocEMA, Recipe
from genlab.results.table import CELL_FIELDS, FLOOR_FIELDS, Columns, Fields
from genlab.runs.result import read_result
from genlab.runs.run_dir_check import holds_a_run
from genlab.sample import write_npz
from genlab.utils.files import write_atomically
from genlab.utils.git import git_commit, has_uncommitted_changes
from genlab.utils.numbers import is_number
from genlab.utils.progress import progress

# Training overrides of every cell: a CSV log the cell reads, no console progress bar.
CELL_TRAIN_OVERRIDES = ("logger=csv", "callbacks.progress_bar=null")
TRAIN_SECONDS = "val/train_seconds"  # logged beside every validation FID
POSTHOC_CALLBACKS = "posthoc_ema"  # conf/callbacks/: the default callbacks and the EMA snapshots
FLOOR_FILE = "floor.json"


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

    def lock(self, runs_dir: Path) -> Path:
        """Beside the run dir, not in it: a training that died before its first checkpoint
        has its run dir removed, and the lock must outlive that."""
        return runs_dir / self.recipe.name / f"{self.seed}.lock"


class CellFailed(Exception):
    """A cell's training or evaluation ended without its numbers (the run dir says why)."""


def missing_cells(recipes: list[Recipe], seeds: tuple[int, ...], results: Path) -> list[Cell]:
    """The cells with no readable stored numbers: what `genlab-results` has left to run (a
    file that cannot be read is measured again, never counted as measured)."""
    cells = [Cell(recipe, seed) for recipe in recipes for seed in seeds]
    return [cell for cell in cells if read_stored(cell.file(results), CELL_FIELDS) is None]


def field_problem(value: Any, kind: Any, name: str) -> str | None:
    """Why `value` is not of `kind` (see table.CELL_FIELDS), naming the field; None if it is."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is None and type(None) in kinds:
        return None
    for each in kinds:
        if isinstance(each, dict) and isinstance(value, dict):
            inner = (field_problem(value.get(k), v, f"{name}.{k}") for k, v in each.items())
            return next((problem for problem in inner if problem), None)
        if isinstance(each, Columns) and isinstance(value, dict):
            columns = [value.get(key) for key in {*each.keys, *value}]
            numbers = all(isinstance(c, list) and all(map(is_number, c)) for c in columns)
            if numbers and len({len(c) for c in columns}) == 1:
                return None
        if isinstance(each, type) and isinstance(value, each) and not isinstance(value, bool):
            return None
    return f"its {name!r} is missing or of the wrong type"


def stored_problem(path: Path, fields: Fields) -> str | None:
    """Why the stored file at `path` cannot be used (None: it can, or there is none)."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"not readable JSON: {first_line(err)}"
    if not isinstance(stored, dict):
        return f"it holds a JSON {type(stored).__name__}, not an object"
    return next(filter(None, (field_problem(stored.get(k), v, k) for k, v in fields.items())), None)


def read_stored(path: Path, fields: Fields) -> dict[str, Any] | None:
    """The stored cell (or floor row) at `path`, or None when there is none or it cannot
    be used (`unreadable_files` names it)."""
    if not path.is_file() or stored_problem(path, fields) is not None:
        return None
    return json.loads(path.read_text())


def unreadable_files(
    results: Path, recipes: list[Recipe], seeds: tuple[int, ...]
) -> list[tuple[Path, str]]:
    """(file, why) of every stored cell and floor row that cannot be used."""
    checks = [(Cell(r, s).file(results), CELL_FIELDS) for r in recipes for s in seeds]
    checks.append((results / FLOOR_FILE, FLOOR_FIELDS))
    problems = [(path, stored_problem(path, fields)) for path, fields in checks]
    return [(path, why) for path, why in problems if why is not None]


def genlab_command(module: str, overrides: list[str]) -> list[str]:
    """An entry point in this interpreter: the cell runs the genlab that runs it."""
    return [sys.executable, "-m", module, *overrides]


@contextmanager
def phase(name: str, log: Path) -> Iterator[None]:
    """One line per phase of a cell (what runs, the log to follow) and, on a terminal, a
    spinner with its elapsed time: a cell takes minutes, its phases tell where it is."""
    get_console().print(f"  {name}: log {log}", highlight=False, soft_wrap=True)
    with progress(name):
        yield


def run_logged(command: list[str], log: Path) -> None:
    """Run a child, its output appended to `log` below a header line: a resumed training's
    log keeps the attempts before it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} genlab-results runs: "
                  f"{shlex.join(command)}\n")  # fmt: skip
        out.flush()
        start = out.tell()
        returncode = CHILDREN.run(command, out)
    if returncode != 0:
        with log.open() as written:
            written.seek(start)
            lines = written.read().strip().splitlines()
        raise CellFailed(
            f"{command[2]} exited with {returncode}: "
            f"{lines[-1] if lines else 'no output'} (log: {log})"
        )


def with_snapshots(recipe: Recipe, run_dir: Path) -> tuple[str, ...]:
    """The override that adds post-hoc EMA snapshots to the recipe's own callbacks (none
    when it keeps them already): `callbacks=[<its choice>,posthoc_ema]`."""
    config = compose_config("train", list(recipe.train), run_dir)
    if config.callbacks.get("posthoc_ema") is not None:
        return ()
    choice = HydraConfig.get().runtime.choices.get("callbacks")
    if choice is None:
        raise ConfigError(
            f"recipe {recipe.name} sets a list of callbacks without {POSTHOC_CALLBACKS}: add "
            f"{POSTHOC_CALLBACKS} to it, or set posthoc_ema: null in the results plan"
        )
    return (f"callbacks=[{choice},{POSTHOC_CALLBACKS}]",)


def train(cell: Cell, run_dir: Path, extra: tuple[str, ...] = ()) -> bool:
    """Train the cell's run (the recipe's overrides, then `extra`) unless it completed
    already; True when it resumed a checkpoint."""
    if (read_result(run_dir) or {}).get("status") == "completed":
        return False
    resumed = (run_dir / "checkpoints" / "last.ckpt").is_file()
    if not resumed and holds_a_run(run_dir):
        shutil.rmtree(run_dir)  # started, then stopped before its first checkpoint: nothing lost
    overrides = [
        *cell.recipe.train,
        *extra,
        f"seed={cell.seed}",
        *CELL_TRAIN_OVERRIDES,
        f"hydra.run.dir={run_dir}",
        *([f"ckpt_path={run_dir}"] if resumed else []),
    ]
    log = run_dir.parent / f"{cell.seed}.train.log"
    with phase("train, resuming its last.ckpt" if resumed else "train", log):
        run_logged(genlab_command("genlab.train", overrides), log)
    return resumed


def evaluate(
    label: str, sources: list[str], eval_dir: Path, eval_overrides: tuple[str, ...], log: Path
) -> dict[str, Any]:
    """genlab-eval of `sources` (its overrides naming a checkpoint or sample files) against
    the test split into `eval_dir`; its whole metrics.json."""
    shutil.rmtree(eval_dir, ignore_errors=True)  # an interrupted evaluation: run it again
    overrides = [
        *sources,
        *eval_overrides,
        f"hydra.run.dir={eval_dir}",
        f"out_file={eval_dir / 'metrics.json'}",
    ]
    run_logged(genlab_command("genlab.eval", overrides), log)
    try:
        return json.loads((eval_dir / "metrics.json").read_text())
    except (OSError, ValueError) as err:
        raise CellFailed(f"{label}: genlab-eval wrote no readable metrics.json: {err}") from None


def score_checkpoints(
    cell: Cell, run_dir: Path, eval_overrides: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(scores of the final weights, scores of best.ckpt or None when the run ranked none)."""
    checkpoints = run_dir / "checkpoints"
    if not (checkpoints / "last.ckpt").is_file():
        raise CellFailed(f"{cell.label}: training left no last.ckpt in {checkpoints}")
    scores: dict[str, dict[str, Any] | None] = {"best": None}
    for which, name in (("final", "last.ckpt"), ("best", "best.ckpt")):
        ckpt = checkpoints / name
        if ckpt.is_file():
            log = run_dir.parent / f"{cell.seed}.eval_{which}.log"
            eval_dir = run_dir / f"eval_{which}"
            sources = [f"ckpt_path={ckpt}"]
            with phase(f"eval {which} ({name})", log):
                scores[which] = evaluate(cell.label, sources, eval_dir, eval_overrides, log)
    return scores["final"], scores["best"]


def choice_row(row: dict[str, str]) -> dict[str, Any]:
    """A row of genlab-ema's posthoc_ema.csv: its weights' label, its numbers as floats (an
    empty field, e.g. the live weights' sigma_rel, as None)."""
    return {k: v if k == "weights" else None if v == "" else float(v) for k, v in row.items()}


def score_posthoc_ema(
    cell: Cell, run_dir: Path, posthoc: PostHocEMA, eval_overrides: tuple[str, ...]
) -> dict[str, Any]:
    """genlab-ema: rebuild the plan's lengths and score them beside the live weights on the
    choice split; then the test-split scores of the length with the lowest choice FID."""
    choice_dir = run_dir / "posthoc_ema_choice"
    shutil.rmtree(choice_dir, ignore_errors=True)  # an interrupted choice: make it again
    log = run_dir.parent / f"{cell.seed}.posthoc_ema.log"
    overrides = [
        f"run_dir={run_dir}",
        f"sigma_rels=[{','.join(f'{s:g}' for s in posthoc.sigma_rels)}]",
        "score=true",
        f"eval_args={json.dumps([*eval_overrides, *posthoc.choose_on])}",
        f"hydra.run.dir={choice_dir}",
    ]
    with phase("post-hoc EMA: rebuild and choose a length", log):
        run_logged(genlab_command("genlab.posthoc_ema_cli", overrides), log)
    with (choice_dir / "posthoc_ema.csv").open() as table:
        rows = [choice_row(row) for row in csv.DictReader(table)]
    chosen = best_length(rows)
    ckpt = run_dir / "checkpoints" / posthoc_checkpoint_name(chosen["sigma_rel"])
    with phase(f"eval post-hoc EMA (sigma_rel {chosen['sigma_rel']:g})", log):
        scores = evaluate(
            cell.label, [f"ckpt_path={ckpt}"], run_dir / "eval_posthoc_ema", eval_overrides, log
        )
    return {
        "sigma_rel": chosen["sigma_rel"],
        "chosen_on": list(posthoc.choose_on),
        "choice": rows,  # every length, the live (and fixed-decay EMA) weights: choice FIDs
        "scores": scores,
    }


def fid_curve(fid: Series | None, seconds: Series | None) -> dict[str, list[float]]:
    """Validation FID against training seconds, from the rows that logged both."""
    if fid is None or seconds is None:
        return {"train_seconds": [], "fid": []}
    at_step = dict(zip(seconds.steps, seconds.values, strict=True))
    points = [(at_step[s], v) for s, v in zip(fid.steps, fid.values, strict=True) if s in at_step]
    return {"train_seconds": [t for t, _ in points], "fid": [v for _, v in points]}


def regime(run_dir: Path) -> dict[str, Any]:
    """What the run trained on and for how long: batches, epochs, training images, batch size."""
    checkpoint = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    config = OmegaConf.create(checkpoint["genlab_config"])
    return {
        "batches": checkpoint_batches_that_stepped(checkpoint),
        "epochs": checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"],
        "batch_size": config.data.batch_size,
        "train_images": len(run_datamodule(config).real_images("train")),
    }


def training_numbers(run_dir: Path) -> dict[str, Any]:
    job = read_job(run_dir, run_dir.name)
    return {
        "status": job.status,
        "model": job.model,
        "fid_key": job.fid_key,
        "best_val_fid": job.best_fid(),
        "last_val_fid": job.last_fid(),
        "wall_seconds": job.wall_seconds,
        "curve": fid_curve(job.fid, job.metrics.get(TRAIN_SECONDS)),
        **regime(run_dir),
    }


def provenance() -> dict[str, Any]:
    """The code that produced the numbers and the machine they were measured on."""
    code = Path(genlab.__file__).parent
    return {
        "commit": git_commit(code),
        # the code and configs that produce the numbers (not the page this command rewrites)
        "uncommitted_changes": has_uncommitted_changes(code, code, config_dir()),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def store(path: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: tmp.write_text(text))


def measure(cell: Cell, plan: Plan, results: Path) -> dict[str, Any]:
    """Run the cell (train, evaluate) under its lock and store its numbers; returns what it
    stored. `CellBusy` when another genlab-results measures it now."""
    run_dir = cell.run_dir(plan.runs_dir)
    with CHILDREN.holding(cell.lock(plan.runs_dir), cell.label):
        machine = provenance()  # the load before the cell's own work: other work beside it
        posthoc = plan.posthoc_ema
        resumed = train(cell, run_dir, with_snapshots(cell.recipe, run_dir) if posthoc else ())
        final, best = score_checkpoints(cell, run_dir, plan.eval)
        averaged = score_posthoc_ema(cell, run_dir, posthoc, plan.eval) if posthoc else None
        record = {
            "recipe": cell.recipe.name,
            "seed": cell.seed,
            "train_overrides": list(cell.recipe.train),
            "eval_overrides": list(plan.eval),
            **machine,
            "resumed": resumed,  # the training wall time is then that of its last start only
            "train": training_numbers(run_dir),
            "final": final,
            "best": best,
            "posthoc_ema": averaged,
            "config": yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()),
        }
        store(cell.file(results), record)
    return record


def measure_floor(plan: Plan, results: Path) -> dict[str, Any]:
    """The floor row: the training images of the plan's `floor` run, scored exactly as the
    cells' samples are (same reference, count, extractor, seeds): the best FID reachable."""
    assert plan.floor is not None
    run_dir = plan.runs_dir / "floor"
    with CHILDREN.holding(plan.runs_dir / "floor.lock", "floor"):
        machine = provenance()
        config = compose_config("train", list(plan.floor), run_dir)
        data_choice = HydraConfig.get().runtime.choices["data"]
        datamodule = run_datamodule(config)
        images = datamodule.real_images("train")
        npz = write_npz(images, None, run_dir / "train_images.npz")
        with phase("eval (training images)", run_dir / "eval.log"):
            scores = evaluate(
                "floor", [f"samples={npz}", f"data={data_choice}", "names=['training images']"],
                run_dir / "eval", plan.eval, run_dir / "eval.log",
            )  # fmt: skip
        record = {
            "floor_overrides": list(plan.floor),
            "eval_overrides": list(plan.eval),
            **machine,
            "train_images": len(images),
            "scores": scores,
        }
        store(results / FLOOR_FILE, record)
    return record


def read_cells(
    results: Path, recipes: list[Recipe], seeds: tuple[int, ...]
) -> dict[str, list[dict[str, Any]]]:
    """The stored cells of each recipe, one per seed of `seeds` that has one, in seed order."""
    files = {
        recipe.name: [Cell(recipe, seed).file(results) for seed in seeds] for recipe in recipes
    }
    cells = {name: [read_stored(f, CELL_FIELDS) for f in paths] for name, paths in files.items()}
    return {name: [cell for cell in stored if cell is not None] for name, stored in cells.items()}


def read_floor(results: Path) -> dict[str, Any] | None:
    """The stored floor row, or None before it was measured (or when it cannot be read)."""
    return read_stored(results / FLOOR_FILE, FLOOR_FIELDS)
