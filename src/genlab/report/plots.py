"""The report's PNGs: training losses, FID per epoch and the final samples of every run.

Each run keeps one colour in every plot, and the legend names it by job number and the
overrides that set it apart, so curves can be told apart without the table. Each function
returns False, writing nothing, when no run has its data.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from genlab.report.runs import Job, fid_features

DPI = 120
PLOTS_PER_ROW = 3  # loss and FID subplots: wide enough to read the curves
GRIDS_PER_ROW = 4  # sample grids: square, so more fit side by side
LABEL_WIDTH = 40  # characters per legend or title line


def job_labels(jobs: list[Job]) -> list[str]:
    """`0: seed=1` in a sweep; a lone run is named by its directory (its overrides are many)."""
    if len(jobs) == 1:
        return [jobs[0].label]
    return [
        textwrap.fill(f"{job.label}: {job.overrides}" if job.overrides else job.label, LABEL_WIDTH)
        for job in jobs
    ]


def job_style(index: int) -> dict[str, str]:
    """A run's colour, the same in every plot; past 10 runs the colours repeat, dashed."""
    return {"color": f"C{index % 10}", "linestyle": ("-", "--", ":", "-.")[index // 10 % 4]}


def grid(n: int, width: float, height: float, per_row: int) -> tuple[Figure, list[Axes]]:
    """n subplots, at most `per_row` per row, each width x height inches.

    A bare Figure drawn by the Agg canvas: no pyplot, so no display, GUI toolkit or global
    figure list, whatever backend the user's matplotlib is set to.
    """
    columns = min(n, per_row)
    rows = -(-n // columns)
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def add_legend(fig: Figure, axes: list[Axes], labels: list[str]) -> None:
    """One legend under the plots for all of them (a run has the same colour everywhere).

    Below, in as many columns as the width holds, and the figure grows to make room for it:
    a legend beside a single plot squeezes it, and one of 20 Optuna trials would hide it.
    """
    drawn: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            drawn.setdefault(label, handle)
    handles = {label: drawn[label] for label in labels if label in drawn}  # in job order
    lines = [label.splitlines() for label in handles]
    longest = max(len(line) for label in lines for line in label)
    columns = max(1, min(len(handles), int(fig.get_figwidth() // (0.09 * longest + 0.8))))
    rows = -(-len(handles) // columns)
    fig.set_figheight(fig.get_figheight() + 0.4 + 0.22 * rows * max(map(len, lines)))
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=columns,
               title="job")  # fmt: skip


def plot_losses(jobs: list[Job], path: Path, title: str) -> bool:
    """Each training loss against the training step (batches), one subplot per loss."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.loss_keys))
    if not keys:
        return False
    fig, axes = grid(len(keys), 5.0, 3.4, PLOTS_PER_ROW)
    labels = job_labels(jobs)
    for ax, key in zip(axes, keys, strict=True):
        logged = [(i, job) for i, job in enumerate(jobs) if key in job.metrics]
        for i, job in logged:
            series = job.metrics[key]
            ax.plot(series.steps, series.values, label=labels[i], lw=1.2, **job_style(i))
        nats = all(job.is_vae for _, job in logged)  # the VAE's loss is -ELBO in nats per image
        ax.set(
            title=key, xlabel="training step (batches)", ylabel="loss (nats)" if nats else "loss"
        )
    save_curves(fig, axes, labels, title, path)
    return True


def save_curves(fig: Figure, axes: list[Axes], labels: list[str], title: str, path: Path) -> None:
    """Integer steps or epochs on x, a light grid, the title and one shared legend; save."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    add_legend(fig, axes, labels)
    fig.savefig(path, dpi=DPI)


def plot_fid(jobs: list[Job], path: Path, title: str) -> bool:
    """FID after each validation epoch; one subplot per feature extractor a sweep mixed."""
    keys = list(dict.fromkeys(job.fid_key for job in jobs if job.fid_key))
    if not keys:
        return False
    fig, axes = grid(len(keys), 6.0, 4.0, PLOTS_PER_ROW)
    labels = job_labels(jobs)
    for ax, key in zip(axes, keys, strict=True):
        for i, job in enumerate(jobs):
            if job.fid_key == key:
                fid = job.metrics[key]
                ax.plot(fid.epochs, fid.values, marker="o", label=labels[i], **job_style(i))
        ax.set(
            title=f"{key} (lower is better)", xlabel="epoch", ylabel=f"FID ({fid_features(key)})"
        )
    save_curves(fig, axes, labels, title, path)
    return True


def read_grid(path: Path | None) -> np.ndarray | None:
    """A sample grid, or None when the run saved none or a killed run left half a PNG."""
    try:
        return None if path is None else mpimg.imread(path)
    except (OSError, ValueError, SyntaxError):  # what PIL raises for a truncated or bad file
        return None


def plot_samples(jobs: list[Job], path: Path, title: str) -> bool:
    """The last sample grid of each run side by side, each titled with its run and epoch."""
    grids = [read_grid(job.final_samples) for job in jobs]
    shown = [(label, job, image) for label, job, image in zip(job_labels(jobs), jobs, grids,
             strict=True) if image is not None]  # fmt: skip
    if not shown:
        return False
    fig, axes = grid(len(shown), 3.6, 4.2, GRIDS_PER_ROW)
    for ax, (label, job, image) in zip(axes, shown, strict=True):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(f"{label}\nsamples/{job.final_samples.name}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.savefig(path, dpi=DPI)
    return True
