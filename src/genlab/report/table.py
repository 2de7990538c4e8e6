"""The report's table: one row per run, as Markdown for report.md and as rich for the console.

Both come from the same header and cells, so what the console shows is what the file says.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from genlab.report.runs import Job

MISSING = "-"


def number(value: float | None) -> str:
    """4 significant digits: FIDs in the thousands and losses near 0.05 both stay readable."""
    return MISSING if value is None else f"{value:.4g}"


def duration(seconds: float | None) -> str:
    """Wall time as a person reads it: `42 s`, `3 min 05 s`, `2 h 07 min`."""
    if seconds is None:
        return MISSING
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def loss_columns(jobs: list[Job]) -> list[str]:
    """Every training loss that some job logged, in the order they first appear."""
    return list(dict.fromkeys(key for job in jobs for key in job.loss_keys))


def table(jobs: list[Job]) -> tuple[list[str], list[list[str]]]:
    """Header and rows; the eval FID column only when some run has a metrics.json."""
    losses = loss_columns(jobs)
    with_eval = any(job.eval_fid is not None for job in jobs)
    header = ["job", "overrides", "status", "best FID", "last FID"]
    header += ["eval FID"] * with_eval + losses + ["wall", "error"]
    rows = []
    for job in jobs:
        row = [job.label, job.overrides or MISSING, job.status]
        row += [number(job.best_fid()), number(job.last_fid())]
        row += [number(job.eval_fid)] * with_eval
        row += [number(job.final_loss(key)) for key in losses]
        row += [duration(job.wall_seconds), job.error or MISSING]
        rows.append(row)
    return header, rows


def markdown_cell(text: str) -> str:
    """A `|` or a line break in an override or an error message would break the table."""
    return " ".join(text.split("\n")).replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(markdown_cell, line)) + " |" for line in lines)


def rich_table(header: list[str], rows: list[list[str]], title: str) -> Table:
    """The same table for the console: failed runs in red, unfinished or unknown in yellow.

    Headers break at spaces and slashes, to leave the width to the values. Cells are Text,
    not markup, so that an override like `model.dims=[64,128]` shows as typed.
    """
    console_table = Table(title=title)
    for column in header:
        console_table.add_column(column.replace(" ", "\n").replace("/", "/\n"), overflow="fold")
    status = header.index("status")
    for row in rows:
        style = {"completed": None, "failed": "red"}.get(row[status], "yellow")
        console_table.add_row(*map(Text, row), style=style)
    return console_table
