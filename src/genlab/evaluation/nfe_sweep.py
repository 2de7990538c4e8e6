"""FID against NFE: every iterative checkpoint scored at a list of step counts, per sampler,
on the same reference and sample count, with one-pass sources (GANs, VAEs, sample files) as
NFE = 1 points on the same axes (genlab-eval `nfe_sweep.steps=[...]`).

Writes `<table>_nfe.md`, `<table>_nfe.csv` and `<table>_nfe.png` beside the comparison table:
one row per (source, sampler, steps) with the NFE the sampling cost, FID, precision, recall
and images/s. The samples of every point come from the same seed, so the curves differ by
the sampler alone.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from genlab.errors import ConfigError
from genlab.evaluation.sources import CheckpointSource
from genlab.models.iterative import IterativeModule
from genlab.utils.figures import new_axes, save_png
from genlab.utils.files import write_atomically

log = logging.getLogger(__name__)

COLUMNS = ("source", "solver", "steps", "nfe", "fid", "precision", "recall", "images_per_second")


def swept(source: Any) -> bool:
    """Whether the source samples iteratively (a sweep applies to it)."""
    return isinstance(source, CheckpointSource) and isinstance(source.model, IterativeModule)


def sweep_settings(source: CheckpointSource, sweep: DictConfig) -> list[dict[str, Any]]:
    """The sampling settings of every point of `source`'s sweep, each checked up front."""
    steps = sweep.steps
    if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
        raise ConfigError(f"nfe_sweep.steps must be a list of step counts, got {steps}")
    solvers = list(sweep.solvers or [source.model.sampling_settings(**source.sampling)["solver"]])
    points = [{**source.sampling, "solver": s, "steps": n} for s in solvers for n in steps]
    for point in points:
        try:
            source.model.sampling_settings(**point)
        except ConfigError as err:
            raise ConfigError(f"nfe_sweep of {source.name}: {err}") from None
    return points


def largest_nfe(sources: list[Any], sweep: DictConfig) -> dict[str, int]:
    """The most network passes per image of each swept source's points (for the budget)."""
    return {
        source.name: max(
            source.model.function_evaluations(**point) or 1
            for point in sweep_settings(source, sweep)
        )
        for source in sources
        if swept(source)
    }


def run_sweep(harness: Any, sources: list[Any], results: list[dict[str, Any]]) -> list[dict]:
    """The sweep's rows: every point of every iterative source, and each other source's own
    result as one NFE = 1 point. Run after the main results: it leaves each source at its
    last point's settings."""
    sweep = harness.cfg.nfe_sweep
    rows = []
    for source, result in zip(sources, results, strict=True):
        if not swept(source):
            rows.append(row(source.name, "one pass", None, 1, result))
            continue
        for point in sweep_settings(source, sweep):
            source.sampling = point
            scores, samples, _, seconds = harness.sample_metrics(source)
            nfe = source.model.function_evaluations(**point)
            speed = len(samples) / seconds["generation"]
            rows.append(row(source.name, point["solver"], point["steps"], nfe,
                            {**scores, "sampling_images_per_second": speed}))  # fmt: skip
            log.info("%s: %s, %d steps, NFE %s: FID %.2f", source.name, point["solver"],
                     point["steps"], nfe, scores["fid"])  # fmt: skip
    return rows


def row(source: str, solver: str, steps: int | None, nfe: int | None, scores: dict) -> dict:
    return {
        "source": source, "solver": solver, "steps": steps, "nfe": nfe,
        "fid": scores.get("fid"), "precision": scores.get("precision"),
        "recall": scores.get("recall"),
        "images_per_second": scores.get("sampling_images_per_second"),
    }  # fmt: skip


def formatted(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(formatted(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(rows: list[dict], path: Path) -> None:
    """FID against NFE (log x): one line per (source, sampler), one-pass sources as points."""
    figure, axes = new_axes(8, 5.5)
    curves: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in rows:
        if r["nfe"] is not None and r["fid"] is not None:
            curves.setdefault((r["source"], r["solver"]), []).append((r["nfe"], r["fid"]))
    for (source, solver), points in curves.items():
        points.sort()
        nfe, fid = zip(*points, strict=True)
        label = source if solver == "one pass" else f"{source}: {solver}"
        curve = len(points) > 1
        axes.plot(
            nfe, fid, marker="o" if curve else "*", markersize=5 if curve else 14, label=label
        )
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("network evaluations per image (NFE)")
    axes.set_ylabel("FID")
    save_png(figure, axes, path, dpi=110, fontsize=8)


def write_sweep(rows: list[dict], stem: Path) -> list[Path]:
    """`<stem>_nfe.md`, `.csv` and `.png`, each written atomically."""
    base = stem.with_name(stem.name + "_nfe")
    written = []
    for suffix, text in ((".md", markdown(rows)), (".csv", csv_text(rows))):
        path = base.with_name(base.name + suffix)
        write_atomically(path, lambda tmp, text=text: tmp.write_text(text))
        written.append(path)
    png = base.with_name(base.name + ".png")
    plot(rows, png)
    return [*written, png]
