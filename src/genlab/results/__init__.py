"""genlab-results (`make results`): the results table, measured and written by one command.

Every recipe of the plan (conf/results.yaml) x every seed is one cell: trained by genlab-train,
its final and best-on-validation weights scored by genlab-eval against the held-out test split,
stored as results/<recipe>/<seed>.json; the floor row (real training images scored the same
way) is results/floor.json. Only missing cells run, so an interrupted `make results` goes on
where it stopped; after each cell docs/results.md (and its time-to-FID picture) is generated
again from all stored cells.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from genlab.config.paths import config_dir
from genlab.errors import user_errors_reported
from genlab.results.cells import (
    FLOOR_FILE,
    CellFailed,
    measure,
    measure_floor,
    missing_cells,
    read_cells,
    read_floor,
)
from genlab.results.plan import Plan, Recipe, load_plan
from genlab.results.plots import drawable, plot_time_to_fid
from genlab.results.table import Cells, render


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
        default=Path("results"),
        help="where the cells are stored: <results>/<recipe>/<seed>.json",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=Path("docs/results.md"),
        help="the page generated from the cells",
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point; a user's mistake is one `error:` line (exit 2), a failed cell is
    reported and skipped, and the command exits 1 if any cell failed."""
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
        if args.list:
            for cell in todo:
                console.print(cell.label, highlight=False)
            return
        floor_failed, failed = False, []  # the floor row's measurement; the cells that failed
        floor_missing = plan.floor is not None and not (args.results / FLOOR_FILE).is_file()
        if floor_missing and not args.render_only:
            console.print("floor: the real training images, scored as samples are")
            try:
                measure_floor(plan, args.results)
            except CellFailed as err:
                floor_failed = True
                console.print(f"failed: {err}", highlight=False)
        for number, cell in enumerate(todo, start=1):
            console.print(f"[{number}/{len(todo)}] {cell.label}", highlight=False)
            try:
                measure(cell, plan, args.results)
            except CellFailed as err:
                failed.append(cell)
                console.print(f"failed: {err}", highlight=False)
            write_page(plan, every, args.results, args.docs)
        if not todo:
            write_page(plan, every, args.results, args.docs)
        console.print(
            f"{args.docs}: {len(todo) - len(failed)} cell(s) measured, "
            f"{len(failed) + floor_failed} failed",
            highlight=False,
        )
    if failed or floor_failed:
        sys.exit(1)
