"""genlab-report: a Markdown table and PNG plots of a run or a sweep, from its files alone.

It reads what genlab-train already wrote (csv/metrics.csv, result.yaml, .hydra/, samples/,
an optional metrics.json) and never re-runs, imports torch or needs a network or W&B, so a
report of a finished sweep takes seconds on any machine that has its directory.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from genlab.errors import GenlabError, user_errors_reported
from genlab.report.plots import plot_fid, plot_losses, plot_samples
from genlab.report.runs import Job, fid_features, find_jobs
from genlab.report.table import markdown_table, rich_table, table

REPORT_FILE = "report.md"
PIPE_WIDTH = 200  # console columns when printing to a file or a pipe: no terminal to fit

# file, section heading, plotter, why a report can lack it
PLOTS: list[tuple[str, str, Callable[[list[Job], Path, str], bool], str]] = [
    ("losses.png", "Training losses", plot_losses, "no run logged a training loss"),
    ("fid.png", "FID per epoch", plot_fid, "no run logged a `val/fid*` column"),
    ("samples.png", "Final samples", plot_samples, "no run has a readable sample grid"),
]


def notes(jobs: list[Job]) -> list[str]:
    """What the columns mean, so that the table reads without this module's source."""
    fid_keys = list(dict.fromkeys(job.fid_key for job in jobs if job.fid_key))
    fid = ", ".join(f"`{key}` ({fid_features(key)})" for key in fid_keys) or "none logged"
    vae = " (VAE: -ELBO, reconstruction and KL, in nats per image)" * any(j.is_vae for j in jobs)
    return [
        f"- best FID / last FID: lowest and final value of {fid} over the validation epochs "
        "(lower is better).",
        f"- `train/...`: the last logged value of each training loss{vae}.",
        "- wall: the run's wall-clock time (`result.yaml`); `-` where the run recorded none "
        "(killed, or older than `result.yaml`).",
    ]


def write_report(run: Path, out: Path, console: Console) -> Path:
    """Read the runs under `run`, write report.md and the plots into `out`, print the table."""
    jobs = find_jobs(run)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenlabError(f"cannot write the report into {out}: {err}; choose --out DIR") from err
    header, rows = table(jobs)
    kind = f"sweep of {len(jobs)} runs" if len(jobs) > 1 else "run"
    name = "/".join(run.resolve().parts[-2:])  # <date>/<time>_<id>: which run, at a glance
    lines = [f"# genlab report: {name}", "", f"{kind}: `{run}`", ""]
    lines += [markdown_table(header, rows), "", *notes(jobs)]
    for file, heading, plot, missing in PLOTS:
        written = plot(jobs, out / file, f"{heading}: {name}")
        lines += ["", f"## {heading}", ""]
        lines.append(f"![{heading}]({file})" if written else f"Not plotted: {missing}.")
    report = out / REPORT_FILE
    report.write_text("\n".join(lines) + "\n")
    console_table = rich_table(header, rows, title=f"genlab report: {run}")
    if not console.is_terminal:  # a log file or a pipe: as wide as the table, within reason
        natural = console.measure(console_table, options=console.options.update_width(PIPE_WIDTH))
        console.width = max(console.width, natural.maximum)
    console.print(console_table)
    console.print(f"report: {report}", highlight=False)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genlab-report",
        description="Markdown table and PNG plots of a genlab run or sweep (offline, no re-run).",
    )
    parser.add_argument(
        "run", type=Path, help="a run directory (outputs/train/<date>/<time>_<id>) or a sweep "
        "directory (outputs/train/multirun/<date>/<time>_<id>)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write report.md and the PNGs "
        "(default: <run>/report)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Console entry point `genlab-report`; a user's mistake is one `error:` line, exit 2."""
    args = parse_args(argv)
    with user_errors_reported():
        write_report(args.run, args.out or args.run / "report", Console())
