"""The results plan (conf/results.yaml): which recipes the results table holds, with which
seeds, which genlab-eval settings score them, which recipe each one ablates, the training
budgets FID is read at, which real images make the floor row, and which post-hoc EMA
lengths every cell rebuilds and chooses among."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from genlab.config.paths import config_dir
from genlab.errors import ConfigError, first_line
from genlab.posthoc_ema import MAX_SIGMA_REL, is_sigma_rel

PLAN_KEYS = {"seeds", "runs_dir", "eval", "budgets_minutes", "floor", "posthoc_ema", "recipes"}
RECIPE_KEYS = {"train", "baseline", "change"}
POSTHOC_KEYS = {"sigma_rels", "choose_on"}


@dataclass(frozen=True)
class Recipe:
    """One row of the table: genlab-train overrides, and the row it is compared with."""

    name: str
    train: tuple[str, ...]
    baseline: str | None = None
    change: str = ""  # what differs from the baseline, in a few words


@dataclass(frozen=True)
class PostHocEMA:
    """Every cell's post-hoc EMA readout (EDM2, Karras et al. 2024, sec. 3): the lengths
    `genlab-ema` rebuilds from the cell's snapshots, and the genlab-eval overrides (after the
    plan's `eval`) of the scores that choose one: on validation images, so that the test
    split reports a length it did not choose."""

    sigma_rels: tuple[float, ...]
    choose_on: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    path: Path  # the file it was read from, named on the page
    seeds: tuple[int, ...]
    runs_dir: Path
    eval: tuple[str, ...]
    recipes: dict[str, Recipe]
    budgets_minutes: tuple[float, ...] = ()  # training wall time at which FID is read
    floor: tuple[str, ...] | None = None  # genlab-train overrides whose training images are scored
    posthoc_ema: PostHocEMA | None = None  # None: cells train without post-hoc EMA snapshots

    def selected(self, names: list[str] | None) -> list[Recipe]:
        """The named recipes (all when None), in the plan's order."""
        unknown = sorted(set(names or []) - set(self.recipes))
        if unknown:
            raise ConfigError(
                f"no recipe {', '.join(unknown)} in the results plan; "
                f"choose from {', '.join(self.recipes)}"
            )
        return [r for name, r in self.recipes.items() if names is None or name in names]


def strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of Hydra overrides (key=value strings)")
    return tuple(value)


def parse_recipe(name: str, spec: object) -> Recipe:
    if not isinstance(spec, dict):
        raise ConfigError(f"recipe {name} must be a mapping with the keys {sorted(RECIPE_KEYS)}")
    unknown = sorted(set(spec) - RECIPE_KEYS)
    if unknown:
        raise ConfigError(
            f"recipe {name} has unknown key(s) {unknown}; its keys are {sorted(RECIPE_KEYS)}"
        )
    if "train" not in spec:
        raise ConfigError(f"recipe {name} needs `train`: the genlab-train overrides it runs")
    return Recipe(
        name,
        strings(spec["train"], f"{name}.train"),
        spec.get("baseline"),
        str(spec.get("change", "")),
    )


def parse_posthoc_ema(spec: object, path: Path) -> PostHocEMA | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != POSTHOC_KEYS:
        raise ConfigError(f"{path}: posthoc_ema must be null or a mapping of the keys "
                          f"{sorted(POSTHOC_KEYS)}")  # fmt: skip
    lengths = spec["sigma_rels"]
    if not isinstance(lengths, list) or not lengths or not all(map(is_sigma_rel, lengths)):
        raise ConfigError(
            f"{path}: posthoc_ema.sigma_rels must be a non-empty list of EMA lengths in "
            f"(0, {MAX_SIGMA_REL:.4f})"
        )
    return PostHocEMA(
        tuple(float(s) for s in lengths), strings(spec["choose_on"], "posthoc_ema.choose_on")
    )


def load_plan(path: Path) -> Plan:
    """Read and check a plan; every mistake is one ConfigError that names the key."""
    if not path.is_file():
        raise ConfigError(f"no results plan at {path}; pass --plan <a results.yaml>")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} holds a YAML {type(raw).__name__}, not a mapping of the keys "
            f"{sorted(PLAN_KEYS)}"
        )
    unknown = sorted(set(raw) - PLAN_KEYS)
    if unknown:
        raise ConfigError(f"{path} has unknown key(s) {unknown}; its keys are {sorted(PLAN_KEYS)}")
    seeds = raw.get("seeds", [])
    if not seeds or not all(isinstance(seed, int) for seed in seeds):
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers")
    budgets = raw.get("budgets_minutes", [])
    if not isinstance(budgets, list) or not all(
        isinstance(b, int | float) and not isinstance(b, bool) and b > 0 for b in budgets
    ):
        raise ConfigError(f"{path}: budgets_minutes must be a list of positive numbers of minutes")
    floor = raw.get("floor")
    recipes = {name: parse_recipe(name, spec) for name, spec in (raw.get("recipes") or {}).items()}
    for recipe in recipes.values():
        if recipe.baseline is not None and recipe.baseline not in recipes:
            raise ConfigError(
                f"recipe {recipe.name}: its baseline {recipe.baseline} is not a recipe of {path}"
            )
    return Plan(
        path,
        tuple(seeds),
        config_dir().parent / raw.get("runs_dir", "outputs/results"),  # from any directory
        strings(raw.get("eval", []), "eval"),
        recipes,
        tuple(sorted(budgets)),
        None if floor is None else strings(floor, "floor"),
        parse_posthoc_ema(raw.get("posthoc_ema"), path),
    )
