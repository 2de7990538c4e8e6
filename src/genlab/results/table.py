"""docs/results.md from the stored cells: one row per recipe (mean +- std over its seeds), one
row per ablation (the recipe against its baseline, seed by seed), and the cells not yet run.

Nothing in the page is typed by hand: `genlab-results --render-only` rewrites it from results/.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from genlab.report.table import MISSING, duration, markdown_table
from genlab.results.plan import Plan, Recipe

Cells = list[dict[str, Any]]

# (header, how a cell's value is read, decimals)
COLUMNS: list[tuple[str, Callable[[dict], float | None], int]] = [
    ("val/fid_lenet (best)", lambda c: c["train"]["best_val_fid"], 1),
    ("test FID", lambda c: c["eval"]["fid"], 1),
    ("precision", lambda c: c["eval"]["precision"], 3),
    ("recall", lambda c: c["eval"]["recall"], 3),
    ("density", lambda c: c["eval"]["density"], 3),
    ("coverage", lambda c: c["eval"]["coverage"], 3),
    ("images/s", lambda c: c["eval"]["sampling_images_per_second"], 0),
]


def mean_std(values: list[float], decimals: int) -> str:
    """`m ± s` over the seeds (sample std); one seed: its value alone."""
    if not values:
        return MISSING
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def present(cells: Cells, read: Callable[[dict], float | None]) -> list[float]:
    return [value for value in map(read, cells) if value is not None]


def recipe_row(recipe: Recipe, cells: Cells, planned: int) -> list[str]:
    walls = present(cells, lambda c: c["train"]["wall_seconds"])
    return [
        f"`{recipe.name}`",
        f"{len(cells)}/{planned}",
        *(mean_std(present(cells, read), decimals) for _, read, decimals in COLUMNS),
        (duration(statistics.mean(walls)) + ("*" if any(map(shared_cores, cells)) else ""))
        if walls
        else MISSING,
    ]


# A cell's own processes (a training's threads, its data loading) keep the load near the CPU
# count; another job beside it pushes it well above.
SHARED_LOAD_PER_CPU = 1.5


def shared_cores(cell: dict[str, Any]) -> bool:
    """Whether other work ran beside the cell, so its wall time is longer than its own."""
    return cell.get("load_average_at_start", 0) > SHARED_LOAD_PER_CPU * cell["cpus"]


def paired_differences(cells: Cells, baseline: Cells) -> list[float]:
    """Test FID of the recipe minus its baseline's, for every seed both have."""
    by_seed = {c["seed"]: c["eval"]["fid"] for c in baseline}
    return [c["eval"]["fid"] - by_seed[c["seed"]] for c in cells if c["seed"] in by_seed]


def verdict(differences: list[float]) -> str:
    """What the seeds say: a change helps (or hurts) only if it does so in every seed."""
    if not differences:
        return "not measured"
    if len(differences) < 2:
        return "not enough seeds"
    if all(d < 0 for d in differences):
        return "helps (lower in every seed)"
    if all(d > 0 for d in differences):
        return "hurts (higher in every seed)"
    return "no consistent difference"


def ablation_row(recipe: Recipe, cells: Cells, baseline: Cells) -> list[str]:
    differences = paired_differences(cells, baseline)
    fid = COLUMNS[1][1]
    return [
        f"`{recipe.name}` vs `{recipe.baseline}`",
        recipe.change or MISSING,
        mean_std(present(cells, fid), 1),
        mean_std(present(baseline, fid), 1),
        mean_std(differences, 1),
        f"{sum(d < 0 for d in differences)}/{len(differences)}",
        verdict(differences),
    ]


def missing_lines(plan: Plan, recipes: list[Recipe], cells: dict[str, Cells]) -> list[str]:
    lines = []
    for recipe in recipes:
        measured = {c["seed"] for c in cells[recipe.name]}
        left = [str(seed) for seed in plan.seeds if seed not in measured]
        if left:
            lines.append(f"- `{recipe.name}`: seed {', '.join(left)}")
    return lines


def provenance(cells: dict[str, Cells]) -> str:
    """The commits that produced the numbers, and whether any cell ran on changed code."""
    every = [c for recipe_cells in cells.values() for c in recipe_cells]
    commits = sorted({(c["commit"] or "unknown")[:8] for c in every})
    dirty = sum(bool(c["uncommitted_changes"]) for c in every)
    cpus = sorted({c["cpus"] for c in every})
    cpu_counts = ", ".join(map(str, cpus)) or MISSING
    text = f"Commits: {', '.join(commits) or MISSING}; CPUs: {cpu_counts}."
    return text + (f" {dirty} cell(s) ran with uncommitted changes." if dirty else "")


def render(plan: Plan, recipes: list[Recipe], cells: dict[str, Cells]) -> str:
    """The whole page."""
    header = ["recipe", "seeds", *(name for name, _, _ in COLUMNS), "train wall (mean)"]
    rows = [recipe_row(recipe, cells[recipe.name], len(plan.seeds)) for recipe in recipes]
    ablations = [
        ablation_row(recipe, cells[recipe.name], cells[recipe.baseline])
        for recipe in recipes
        if recipe.baseline is not None and recipe.baseline in cells
    ]
    missing = missing_lines(plan, recipes, cells)
    parts = [
        "# Results",
        "",
        "<!-- Generated by `make results` (genlab-results) from results/*/*.json: do not edit. -->",
        "",
        f"Every recipe of {plan.path.name}, trained with seeds {', '.join(map(str, plan.seeds))}"
        " and scored by genlab-eval against the test split of its dataset "
        f"(`{' '.join(plan.eval)}`). Cells: mean ± std over the seeds measured. "
        "val/fid_lenet is the best FID logged during training, on the validation split; "
        "test FID, precision/recall (k = 3) and density/coverage (k = 5) are of the best "
        "checkpoint's samples; images/s is genlab-eval's sampling speed.",
        "",
        markdown_table(header, rows),
        "",
        "## Ablations",
        "",
        "Each recipe against the run it changes, seed by seed (difference: recipe − baseline, "
        "test FID; lower is better). A change helps only when it is lower in every seed.",
        "",
        markdown_table(
            [
                "comparison",
                "change",
                "test FID",
                "baseline test FID",
                "difference",
                "lower in",
                "verdict",
            ],
            ablations,
        )
        if ablations
        else "No ablation has cells yet.",
        "",
        provenance(cells),
        "",
        "\\* some of the recipe's cells started with a load average above 1.5 per CPU: "
        "other work shared the cores, so the wall time is longer than the recipe alone takes.",
    ]
    if missing:
        parts += [
            "",
            "## Not measured yet",
            "",
            "`make results` runs these cells next:",
            "",
            *missing,
        ]
    return "\n".join(parts) + "\n"
