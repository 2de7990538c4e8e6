"""genlab-results (`make results`): the results table, measured and written by one command.

Every recipe of the plan (conf/results.yaml) x every seed is one cell: trained by genlab-train,
its final and best-on-validation weights scored by genlab-eval against the held-out test split,
stored as results/<recipe>/<seed>.json; the floor row (real training images scored the same
way) is results/floor.json. Only missing cells run, so an interrupted `make results` goes on
where it stopped; after each cell docs/results.md (and its time-to-FID picture) is generated
again from all stored cells. Each cell prints a line per phase (train, eval final, eval best)
naming the log to follow.

Ctrl+C or SIGTERM stops the whole command: the running training saves its checkpoint (see
genlab.results.children), the page is written, and the next run resumes the cell. A cell
that another genlab-results measures at the same time is skipped, not failed. The default
plan, results/ and docs/results.md are the project's, from any current directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rich.console import Console

from genlab.config.paths import config_dir
from genlab.errors import user_errors_reported
from genlab.results.cells import (
    Cell,
    CellFailed,
    measure,
    measure_floor,
    missing_cells,
    read_cells,
    read_floor,
    unreadable_files,
)
from genlab.results.children import CHILDREN, CellBusy, Stopped
from genlab.results.plan import Plan, Recipe, load_plan
from genlab.results.plots import drawable, plot_time_to_fid
from genlab.results.table import Cells, render

# The project's root: the default results/ and docs/ are its own, whatever the current directory.
PROJECT = config_dir().parent


def picture_path(docs: Path) -> Path:
    """The time-to-FID picture, beside the page that shows it."""
    return docs.with_name(f"{docs.stem}_time_to_fid.png")


def page(
    plan: Plan, recipes: list[Recipe], results: Path, docs: Path
) -> tuple[str, dict[str, Cells]]:
    """(the page's text, the cells it was made from)."""
    cells = read_cells(results, recipes, plan.seeds)
    picture = picture_path(docs).name if drawable(cells) else None
    return render(plan, recipes, cells, read_floor(results), picture), cells


def write_page(plan: Plan, recipes: list[Recipe], results: Path, docs: Path) -> None:
    """docs/results.md and, beside it, the time-to-FID picture it shows."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    text, cells = page(plan, recipes, results, docs)
    plot_time_to_fid(cells, picture_path(docs))
    docs.write_text(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genlab-results",
        description="Train and score every recipe x seed of a results plan that has no stored "
        "numbers yet, then write the results page from all stored numbers.",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        default=config_dir() / "results.yaml",
        help="the results plan (default: conf/results.yaml)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=PROJECT / "results",
        help="where the cells are stored: <results>/<recipe>/<seed>.json (default: the "
        "project's results/, from any directory; a path given is relative to the current one)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=PROJECT / "docs" / "results.md",
        help="the page generated from the cells (default: the project's docs/results.md)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="RECIPE",
        default=None,
        help="run only these recipes' missing cells (the page lists all)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: write the page from the stored cells",
    )
    parser.add_argument("--list", action="store_true", help="run nothing: print the missing cells")
    return parser.parse_args(argv)


@dataclass
class Tally:
    """What a run did with its cells: its summary line and its exit status."""

    measured: int = 0
    failed: list[str] = field(default_factory=list)
    busy: int = 0  # skipped: another genlab-results measures them
    current: str | None = None  # the cell (or the floor) being measured

    def summary(self, docs: Path) -> str:
        busy = f", {self.busy} skipped (another genlab-results measures them)" if self.busy else ""
        return f"{docs}: {self.measured} cell(s) measured, {len(self.failed)} failed{busy}"

    def interrupted(self, stop: Stopped) -> str:
        if self.current is None:
            return f"interrupted ({stop}) between cells; run genlab-results again to go on"
        how = "did not exit in time and was killed" if stop.killed else "stopped"
        return (
            f"interrupted ({stop}): {self.current} {how} and is not stored; run genlab-results "
            "again to resume it (its training goes on from its last checkpoint)"
        )


def measure_one(label: str, run: Callable[[], object], tally: Tally, console: Console) -> None:
    """Measure one cell (or the floor): a failed one is reported and skipped, as is one that
    another genlab-results measures now (its numbers are that one's to store)."""
    tally.current = label
    try:
        run()
        tally.measured += 1
    except CellFailed as err:
        tally.failed.append(label)
        console.print(f"failed: {err}", highlight=False)
    except CellBusy as err:
        tally.busy += 1
        console.print(str(err), highlight=False)
    tally.current = None


def measure_all(
    plan: Plan, todo: list[Cell], args: argparse.Namespace, tally: Tally, console: Console
) -> None:
    """The floor row if it is missing, then every cell of `todo`; the page after each."""
    every = plan.selected(None)
    if plan.floor is not None and read_floor(args.results) is None:
        console.print("floor: the real training images, scored as samples are")
        measure_one("floor", partial(measure_floor, plan, args.results), tally, console)
    for number, cell in enumerate(todo, start=1):
        console.print(f"[{number}/{len(todo)}] {cell.label}", highlight=False)
        measure_one(cell.label, partial(measure, cell, plan, args.results), tally, console)
        write_page(plan, every, args.results, args.docs)
    if not todo:
        write_page(plan, every, args.results, args.docs)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; a user's mistake is one `error:` line (exit 2), a failed cell is
    reported and skipped, a cell that another genlab-results measures is skipped, and the
    command exits 1 if any cell failed. SIGINT or SIGTERM stops the whole command once the
    running child has saved (exit 130 or 143), after writing the page."""
    args = parse_args(argv)
    console = Console(soft_wrap=True)  # a path in a line is never broken
    with user_errors_reported():
        plan = load_plan(args.plan)
        every = plan.selected(None)
        todo = (
            []
            if args.render_only
            else missing_cells(plan.selected(args.only), plan.seeds, args.results)
        )
        for path, why in unreadable_files(args.results, every, plan.seeds):
            console.print(
                f"{path} cannot be used ({why}): it is left out of the page and counted as "
                "not measured; a run of genlab-results measures it again and replaces the file",
                highlight=False,
            )
        if args.list:
            for cell in todo:
                console.print(cell.label, highlight=False)
            return
        if args.render_only:
            write_page(plan, every, args.results, args.docs)
            return
        tally = Tally()
        try:
            with CHILDREN.stopping_on_signals():
                measure_all(plan, todo, args, tally, console)
        except Stopped as stop:
            write_page(plan, every, args.results, args.docs)
            console.print(tally.interrupted(stop), highlight=False)
            sys.exit(stop.exit_status)
        console.print(tally.summary(args.docs), highlight=False)
    if tally.failed:
        sys.exit(1)
