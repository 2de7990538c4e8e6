"""A Hydra callback that keeps a sweep's scoreboard: each job's status, value and error.

Every job, in whichever process or machine the launcher ran it, completes the
`result.yaml` that the run wrote (genlab.runs.result) with its job number,
overrides and directory when it ends, and then rebuilds
`<sweep dir>/summary.csv` (every job) and `<sweep dir>/best.yaml` (the job with the
lowest value, and what it changed) from all results so far, under a file lock. A
failed job therefore never hides the results of the others, and the summary names
the failed job, its overrides and its error. At the end of a sweep the table is
printed.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from genlab.errors import SweepJobError
from genlab.runs.result import RESULT_FILE, read_result, write_result
from genlab.utils.files import write_atomically

log = logging.getLogger("genlab")

SUMMARY_FILE = "summary.csv"
BEST_FILE = "best.yaml"
COLUMNS = ["job", "status", "value", "metric", "wall_seconds", "overrides", "error", "dir"]


def job_result(job_return: JobReturn, job_num: int, job_dir: Path, sweep_dir: Path) -> dict:
    """One row of the summary: what the job recorded (genlab.runs.result), with its
    number, overrides and directory; `value` is its best optimized_metric."""
    recorded = read_result(job_dir) or {}
    failed = job_return.status != JobStatus.COMPLETED
    outcome = job_return._return_value  # the `return_value` property re-raises a job's error
    if isinstance(outcome, SweepJobError):  # a GenlabError, already `<type>: <message>`
        described = str(outcome)
    else:
        described = f"{type(outcome).__name__}: {outcome}"
    error = described.splitlines()[0] if failed else ""
    status = recorded.get("status", "failed") if failed else "completed"
    return {
        "job": job_num,
        "status": status,
        "value": None if failed or outcome is None else float(outcome),
        "metric": recorded.get("metric"),
        "wall_seconds": recorded.get("wall_seconds"),
        "overrides": " ".join(job_return.overrides or []),
        "error": error,
        "dir": os.path.relpath(job_dir, sweep_dir),
    }


def read_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's result completed so far (a job still ending has no `job` yet), in order."""
    rows = [yaml.safe_load(path.read_text()) for path in sweep_dir.glob(f"**/{RESULT_FILE}")]
    return sorted((row for row in rows if "job" in row), key=lambda row: row["job"])


def varying_overrides(rows: list[dict[str, Any]]) -> list[str]:
    """Each job's overrides less those that every job shares: what the sweep changed."""
    per_job = [row["overrides"].split() for row in rows]
    shared = set.intersection(*map(set, per_job)) if len(per_job) > 1 else set()
    return [" ".join(o for o in overrides if o not in shared) for overrides in per_job]


def best_job(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed job with the lowest value, with the overrides that set it apart."""
    scored = [
        {**row, "changed": changed}
        for row, changed in zip(rows, varying_overrides(rows), strict=True)
        if row["value"] is not None
    ]
    return min(scored, key=lambda row: row["value"], default=None)


def write_text_atomically(path: Path, text: str) -> None:
    """Other jobs read these files while this one writes them: never show half a file."""
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """Rebuild summary.csv and best.yaml from the results of the jobs that have ended."""
    rows = read_results(sweep_dir)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(sweep_dir / SUMMARY_FILE, table.getvalue())
    best = best_job(rows)
    if best is not None:
        write_text_atomically(sweep_dir / BEST_FILE, yaml.safe_dump(best, sort_keys=False))
    return rows


def summary_table(rows: list[dict[str, Any]]) -> Table:
    """The summary as a rich table (overrides that vary only), failed jobs in red."""
    table = Table(title="sweep summary (value: best optimized_metric, lower is better)")
    for column in ("job", "status", "value", "wall (s)", "overrides", "error"):
        table.add_column(column, overflow="fold")
    for row, overrides in zip(rows, varying_overrides(rows), strict=True):
        value = "" if row["value"] is None else f"{row['value']:.4g}"
        wall = "" if row.get("wall_seconds") is None else f"{row['wall_seconds']:.0f}"
        style = "red" if row["status"] == "failed" else None
        table.add_row(
            str(row["job"]), row["status"], value, wall, overrides, row["error"], style=style
        )
    return table


# Sweeps this process started whose end Hydra has not reached: when a job fails, Hydra's
# sweeper re-raises its error after the last job and never calls `on_multirun_end`.
UNFINISHED_SWEEPS: set[Path] = set()


def print_summary(sweep_dir: Path) -> None:
    """Rebuild the sweep's summary files from every job's result and print its table."""
    with FileLock(sweep_dir / f".{SUMMARY_FILE}.lock"):
        rows = write_summary(sweep_dir)
    Console(stderr=True).print(summary_table(rows))
    log.info("sweep summary: %s", sweep_dir / SUMMARY_FILE)


def print_unfinished_sweep_summaries() -> None:
    """The table of each sweep that ended without `on_multirun_end` (a job failed)."""
    while UNFINISHED_SWEEPS:
        sweep_dir = UNFINISHED_SWEEPS.pop()
        if (sweep_dir / SUMMARY_FILE).is_file():
            print_summary(sweep_dir)


class SweepSummary(Callback):
    """Record every multirun job's outcome in `result.yaml` and `<sweep dir>/summary.csv`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        UNFINISHED_SWEEPS.add(Path(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(hydra_cfg.sweep.dir)
        job_dir = Path(hydra_cfg.runtime.output_dir)
        result = job_result(job_return, hydra_cfg.job.num, job_dir, sweep_dir)
        write_result(job_dir, result)
        if result["status"] == "failed":
            log.error("sweep job %d (%s) failed: %s", result["job"], result["overrides"],
                      result["error"])  # fmt: skip
        with FileLock(sweep_dir / f".{SUMMARY_FILE}.lock"):
            write_summary(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        UNFINISHED_SWEEPS.discard(sweep_dir)
        print_summary(sweep_dir)
