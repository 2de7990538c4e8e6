"""The results page's picture: validation FID against training time, every recipe on one
axes (log-log), the mean over seeds as a line and the range of the seeds as a band."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genlab.utils.figures import new_axes, save_png

GRID_POINTS = 60


def seed_curves(cells: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training seconds, validation FID) of each cell that logged at least two points."""
    curves = []
    for cell in cells:
        curve = (cell.get("train") or {}).get("curve") or {}
        seconds, fid = np.asarray(curve.get("train_seconds", [])), np.asarray(curve.get("fid", []))
        finite = np.isfinite(fid) & (seconds > 0)
        if finite.sum() >= 2:
            curves.append((seconds[finite], fid[finite]))
    return curves


def on_common_grid(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Every seed's curve interpolated (in log time) where all seeds have points."""
    start = max(seconds[0] for seconds, _ in curves)
    end = min(seconds[-1] for seconds, _ in curves)
    grid = np.geomspace(start, max(end, start), GRID_POINTS)
    values = np.stack([np.interp(np.log(grid), np.log(s), f) for s, f in curves])
    return grid, values


def recipe_curves(
    cells: dict[str, list[dict[str, Any]]],
) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The seeds' curves of every recipe that has some."""
    recipes = {name: seed_curves(c) for name, c in cells.items()}
    return {name: curves for name, curves in recipes.items() if curves}


def drawable(cells: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether some cell has a curve to draw."""
    return bool(recipe_curves(cells))


def plot_time_to_fid(cells: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """Write the picture to `path`; False (and nothing written) when no cell has a curve."""
    recipes = recipe_curves(cells)
    if not recipes:
        return False
    figure, axes = new_axes(8, 5.5)
    for name, curves in recipes.items():
        grid, values = on_common_grid(curves)
        (line,) = axes.plot(grid / 60, values.mean(axis=0), label=f"{name} ({len(curves)})")
        axes.fill_between(
            grid / 60, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2
        )
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="training wall time (minutes; the time spent measuring FID left out)",
        ylabel="validation FID (LeNet features)",
        title="FID against training time: mean over seeds, band = min to max",
    )
    save_png(figure, axes, path, dpi=100, fontsize="small", title="recipe (seeds)")
    return True
