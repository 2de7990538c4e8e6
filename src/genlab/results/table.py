"""docs/results.md from the stored cells: the floor row, one row per recipe (mean +- std over
its seeds: final and best-on-validation weights, the chosen post-hoc EMA), FID at fixed
training budgets, the noise of one score, and one row per ablation (paired interval and
verdict, with its regime).

Nothing in the page is typed by hand: `genlab-results --render-only` rewrites it from results/.
Headers, decimals and directions come from the metric registry; a cell stored before a metric
existed shows `-` for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genlab.evaluation.metric_registry import metric
from genlab.report.table import MISSING, duration, markdown_table
from genlab.results.plan import Plan, Recipe
from genlab.results.verdicts import CONFIDENCE, compare

Cells = list[dict[str, Any]]

# The test-split scores of the recipe table, in order (genlab-eval's keys)
SCORE_KEYS = ("kid_mean", "precision", "recall", "density", "coverage", "nfe")


@dataclass(frozen=True)
class Columns:
    """The type of an object of lists of numbers, all of one length, with at least `keys`:
    a curve, or scores per latent seed (read in pairs, so a list of another length breaks)."""

    keys: tuple[str, ...]


# What this page reads of a stored cell and of the floor row, of which type (cells.py checks
# every stored file against it): a type or a tuple of types, a dict for an object of such
# fields (a key that is absent reads as null), or Columns.
Fields = dict[str, Any]
NUMBER = (int, float, type(None))  # null: not measured, shown as -
SCORES: Fields = {
    **{key: NUMBER for k in ("fid", *SCORE_KEYS) for key in (k, f"{k}_seeds_std")},
    "repeats": NUMBER,
    "per_seed": (Columns(("seed",)), type(None)),
}
CELL_FIELDS: Fields = {
    "seed": int,
    "final": SCORES,
    "best": (SCORES, type(None)),
    "posthoc_ema": ({"sigma_rel": (int, float), "scores": SCORES}, type(None)),
    "train": {
        **{key: NUMBER for key in ("wall_seconds", "batches", "batch_size", "train_images")},
        "curve": (Columns(("train_seconds", "fid")), type(None)),
    },
    "commit": (str, type(None)),
    "cpus": (int, type(None)),
    "load_average_at_start": NUMBER,
    "config": ({"model": ({"sampling": (dict, type(None)),
                           "validation_sampling": (dict, type(None))}, type(None))},
               type(None)),
}  # fmt: skip
FLOOR_FIELDS: Fields = {"scores": SCORES, "train_images": NUMBER}


def final(key: str) -> Callable[[dict], float | None]:
    return lambda cell: (cell.get("final") or {}).get(key)


def best(key: str) -> Callable[[dict], float | None]:
    return lambda cell: (cell.get("best") or {}).get(key)


def posthoc_ema(key: str) -> Callable[[dict], float | None]:
    return lambda cell: ((cell.get("posthoc_ema") or {}).get("scores") or {}).get(key)


def trained(key: str) -> Callable[[dict], float | None]:
    return lambda cell: (cell.get("train") or {}).get(key)


def mean_std(values: list[float], decimals: int) -> str:
    """`m ± s` over the seeds (sample std); one seed: its value alone."""
    if not values:
        return MISSING
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def present(cells: Cells, read: Callable[[dict], float | None]) -> list[float]:
    return [value for value in map(read, cells) if value is not None]


# A cell's own processes (a training's threads, its data loading) keep the load near the CPU
# count; another job beside it pushes it well above.
SHARED_LOAD_PER_CPU = 1.5


def shared_cores(cell: dict[str, Any]) -> bool:
    """Whether other work ran beside the cell: its times are longer than its own, and it
    enters no verdict until it is measured again."""
    return (cell.get("load_average_at_start") or 0) > SHARED_LOAD_PER_CPU * (cell.get("cpus") or 1)


def quiet(cells: Cells) -> Cells:
    return [cell for cell in cells if not shared_cores(cell)]


def wall_time(cells: Cells) -> str:
    walls = present(cells, trained("wall_seconds"))
    if not walls:
        return MISSING
    return duration(statistics.mean(walls)) + ("*" if any(map(shared_cores, cells)) else "")


def posthoc_ema_fid(cells: Cells) -> str:
    """The chosen post-hoc EMA's test FID over the seeds, with the length each seed chose."""
    chosen = [cell for cell in cells if posthoc_ema("fid")(cell) is not None]
    if not chosen:
        return MISSING
    lengths = "/".join(f"{cell['posthoc_ema']['sigma_rel']:g}" for cell in chosen)
    return (
        f"{mean_std(present(chosen, posthoc_ema('fid')), metric('fid').decimals)} (σ_rel {lengths})"
    )


def recipe_row(recipe: Recipe, cells: Cells, planned: int) -> list[str]:
    fid = metric("fid").decimals
    return [
        f"`{recipe.name}`",
        f"{len(cells)}/{planned}",
        mean_std(present(cells, final("fid")), fid),
        mean_std(present(cells, best("fid")), fid),
        posthoc_ema_fid(cells),
        *(mean_std(present(cells, final(k)), metric(k).decimals) for k in SCORE_KEYS),
        mean_std(present(cells, trained("batches")), 0),
        wall_time(cells),
    ]


def floor_row(floor: dict[str, Any] | None) -> list[str]:
    scores = (floor or {}).get("scores") or {}

    def shown(key: str) -> str:
        value, spread = scores.get(key), scores.get(f"{key}_seeds_std")
        if value is None:
            return MISSING
        decimals = metric(key).decimals
        return f"{value:.{decimals}f}" + ("" if spread is None else f" ± {spread:.{decimals}f}")

    images = (floor or {}).get("train_images")
    return [
        f"real training images (floor{f', {images:,}' if images else ''})",
        "-",
        shown("fid"),
        "-",
        "-",
        *(shown(k) if k != "nfe" else "-" for k in SCORE_KEYS),
        "-",
        "-",
    ]


def fid_at(cell: dict[str, Any], seconds: float) -> tuple[float | None, bool]:
    """(the last validation FID measured within `seconds` of training, whether the run
    ended before that budget)."""
    curve = (cell.get("train") or {}).get("curve") or {}
    points = list(zip(curve.get("train_seconds", []), curve.get("fid", []), strict=True))
    within = [fid for t, fid in points if t <= seconds]
    ended_before = bool(points) and points[-1][0] < seconds
    return (within[-1] if within else None), ended_before


def sampling(cells: Cells) -> str:
    """How an iterative recipe's validation FID sampled (its `validation_sampling` over its
    `sampling`: solver, steps, guidance), else `one pass`."""
    if not cells:
        return MISSING
    model = (cells[0].get("config") or {}).get("model") or {}
    options = {**(model.get("sampling") or {}), **(model.get("validation_sampling") or {})}
    chosen = [f"{k} {options[k]}" for k in ("solver", "steps", "guidance") if options.get(k)]
    return ", ".join(chosen) or "one pass"


def budget_row(recipe: Recipe, cells: Cells, budgets: tuple[float, ...]) -> list[str]:
    row = [f"`{recipe.name}`", sampling(cells)]
    for minutes in budgets:
        read = [fid_at(cell, minutes * 60) for cell in cells]
        values = [value for value, _ in read if value is not None]
        ended = any(ended_before for _, ended_before in read)
        row.append(mean_std(values, metric("fid").decimals) + (" †" if values and ended else ""))
    return row


def regime(cells: Cells) -> str:
    """What the cells trained: batches of how many images, on how many, for how long."""
    batches = present(cells, trained("batches"))
    images = present(cells, trained("train_images"))
    size = present(cells, trained("batch_size"))
    walls = present(cells, trained("wall_seconds"))
    if not (batches and images and size and walls):
        return MISSING
    return (
        f"{statistics.mean(batches):,.0f} batches of {size[0]:.0f} on {images[0]:,.0f} images, "
        f"{duration(statistics.mean(walls))}"
    )


def interval(low: float | None, high: float | None) -> str:
    return MISSING if low is None or high is None else f"[{low:.1f}, {high:.1f}]"


def ablation_row(recipe: Recipe, cells: Cells, baseline: Cells) -> list[str]:
    comparison = compare(quiet(cells), quiet(baseline))
    mean = comparison.mean
    left_out = len(cells) + len(baseline) - len(quiet(cells)) - len(quiet(baseline))
    seeds = str(len(comparison.differences))
    if left_out:
        seeds += f" ({left_out} under load left out)"
    return [
        f"`{recipe.name}` vs `{recipe.baseline}`",
        recipe.change or MISSING,
        regime(cells),
        MISSING if mean is None else f"{mean:+.1f}",
        interval(comparison.low, comparison.high),
        seeds,
        comparison.verdict,
    ]


def latent_noise(cells: dict[str, Cells]) -> str:
    """How much one score moves with the latent draw alone, beside what the seeds move."""
    every = [cell for recipe_cells in cells.values() for cell in recipe_cells]
    draws = present(every, final("fid_seeds_std"))
    repeats = present(every, final("repeats"))
    spreads = [
        statistics.stdev(values)
        for values in (present(c, final("fid")) for c in cells.values())
        if len(values) >= 2
    ]
    if not draws or not repeats:
        return "No cell has scores over several latent seeds yet."
    one_draw, r = statistics.median(draws), int(statistics.median(repeats))
    text = (
        f"One FID of a fixed set of weights moves with the latent draw alone by a standard "
        f"deviation of {one_draw:.2f} (median over {len(draws)} cells); a cell's score is the "
        f"mean over {r} latent seeds, so it carries about {one_draw / r**0.5:.2f} of that noise."
    )
    if spreads:
        text += (
            f" Between training seeds, a recipe's score moves by a standard deviation of "
            f"{statistics.median(spreads):.2f} (median over {len(spreads)} recipes): the seeds, "
            "not the latent draws, decide how wide an interval is."
        )
    return text


def missing_lines(plan: Plan, recipes: list[Recipe], cells: dict[str, Cells]) -> list[str]:
    lines = []
    for recipe in recipes:
        measured = {c["seed"] for c in cells[recipe.name]}
        left = [str(seed) for seed in plan.seeds if seed not in measured]
        if left:
            lines.append(f"- `{recipe.name}`: seed {', '.join(left)}")
    return lines


def under_load_lines(cells: dict[str, Cells]) -> list[str]:
    return [
        f"- `{name}` seed {cell['seed']} (load average {cell['load_average_at_start']} "
        f"on {cell['cpus']} CPUs)"
        for name, recipe_cells in cells.items()
        for cell in recipe_cells
        if shared_cores(cell)
    ]


def provenance(cells: dict[str, Cells]) -> str:
    """The commits that produced the numbers, and whether any cell ran on changed code."""
    every = [c for recipe_cells in cells.values() for c in recipe_cells]
    commits = sorted({(c.get("commit") or "unknown")[:8] for c in every})
    dirty = sum(bool(c.get("uncommitted_changes")) for c in every)
    cpus = sorted({c["cpus"] for c in every if c.get("cpus") is not None})
    cpu_counts = ", ".join(map(str, cpus)) or MISSING
    text = f"Commits: {', '.join(commits) or MISSING}; CPUs: {cpu_counts}."
    return text + (f" {dirty} cell(s) ran with uncommitted changes." if dirty else "")


def render(
    plan: Plan,
    recipes: list[Recipe],
    cells: dict[str, Cells],
    floor: dict[str, Any] | None = None,
    picture: str | None = None,
) -> str:
    """The whole page."""
    scores = [metric(k).header for k in SCORE_KEYS]
    header = ["recipe", "seeds", "test FID (final)", "test FID (best on val)",
              "test FID (post-hoc EMA)", *scores, "batches", "train wall (mean)"]  # fmt: skip
    rows = [recipe_row(recipe, cells[recipe.name], len(plan.seeds)) for recipe in recipes]
    if plan.floor is not None:
        rows.insert(0, floor_row(floor))
    ablations = [
        ablation_row(recipe, cells[recipe.name], cells[recipe.baseline])
        for recipe in recipes
        if recipe.baseline is not None and recipe.baseline in cells
    ]
    budgets = [budget_row(recipe, cells[recipe.name], plan.budgets_minutes) for recipe in recipes]
    missing, under_load = missing_lines(plan, recipes, cells), under_load_lines(cells)
    choice = " ".join(plan.posthoc_ema.choose_on) if plan.posthoc_ema else "validation images"
    parts = [
        "# Results",
        "",
        "<!-- Generated by `make results` (genlab-results) from results/*.json and "
        "results/*/*.json: do not edit. -->",
        "",
        f"Every recipe of {plan.path.name}, trained with seeds {', '.join(map(str, plan.seeds))}"
        " and scored by genlab-eval against the held-out test split of its dataset, which no "
        f"training and no checkpoint selection saw (`{' '.join(plan.eval)}`). Every cell is "
        "scored on the same latent seeds. Cells: mean ± std over the training seeds measured. "
        "**test FID (final)** is of the weights at the end of training; **test FID (best on "
        "val)** of the checkpoint with the lowest validation FID, a second number that "
        "selection on a noisy score biases downwards. **test FID (post-hoc EMA)** is of the "
        "weight average (EDM2's post-hoc EMA, rebuilt after training from the run's "
        "snapshots) whose length σ_rel scored the lowest FID of the plan's lengths on "
        f"`{choice}`; each seed's choice is named. KID, precision/recall (k = 3), "
        "density/coverage (k = 5) and NFE (network evaluations per image) are of the final "
        "weights. The floor row scores real training images exactly as samples are scored "
        "(same reference, count, extractor and seeds): the best FID reachable.",
        "",
        markdown_table(header, rows),
        "",
        "## The noise of one score",
        "",
        latent_noise(cells),
        "",
        "## FID at fixed training budgets",
        "",
        "Validation FID (the training-time measure, LeNet features, on the validation split) "
        "of the last evaluation within each budget of training wall time, the time spent "
        "measuring FID left out; † where some seed's run ended before the budget (it shows "
        "that run's last value). Iterative families state the sampler their FID used.",
        "",
        markdown_table(
            ["recipe", "sampling", *(f"FID at {m:g} min" for m in plan.budgets_minutes)], budgets
        )
        if plan.budgets_minutes
        else "The plan names no budgets.",
        "",
        *([f"![validation FID against training time]({picture})", ""] if picture else []),
        "## Ablations",
        "",
        "Each recipe against the run it changes, on the final weights' test FID (recipe − "
        "baseline; lower is better), paired by training seed and latent seed. The interval is "
        f"a {CONFIDENCE:.0%} paired t interval over the training seeds (see "
        "genlab/results/verdicts.py for why not a bootstrap); a change helps or hurts only "
        "when it excludes zero. The regime is what the recipe trained: the verdict holds for "
        "that run length, data size and budget, not beyond. Cells that shared the cores with "
        "other work enter no verdict until they are measured again.",
        "",
        markdown_table(
            ["comparison", "change", "regime", "difference", "interval", "seeds", "verdict"],
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
    if under_load:
        parts += ["", "## Measured under load: to run again", "", *under_load]
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
