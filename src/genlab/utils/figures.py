"""Pictures drawn off-screen and written atomically: the PNGs genlab writes beside its tables
(FID against NFE, against the EMA length, against training time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genlab.utils.files import write_atomically


def new_axes(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of `width` x `height` inches on the Agg canvas (no display needed)."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def save_png(figure: Figure, axes: Axes, path: Path, dpi: int, **legend: Any) -> None:
    """Grid, legend (`legend`: its options) and tight layout, then the PNG, written
    atomically and without the software tag, so that its bytes depend on the data alone."""
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(**legend)
    figure.tight_layout()
    write_atomically(
        path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    )
