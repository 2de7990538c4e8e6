"""A long phase's progress on the console (sampling, feature extraction, export): a rich
bar that disappears when the phase ends. Inside a run it nests in the training bar's live
display, so an end-of-epoch FID no longer freezes the screen; away from a terminal (a
log file, CI) rich draws nothing, and in DDP only rank 0 draws."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pytorch_lightning.utilities import rank_zero_only
from rich import get_console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]  # called with how many items a step completed


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Advance]:
    """A transient bar over `total` items (a spinner with the elapsed time when the total
    is unknown, as for an export); yields the function that advances it."""
    if total is None:
        columns = [SpinnerColumn(), TextColumn(description), TimeElapsedColumn()]
    else:
        columns = [TextColumn(description), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip
    console = get_console()
    shown = rank_zero_only.rank == 0 and console.is_terminal  # a log file gets no blank line
    with Progress(*columns, console=console, transient=True, disable=not shown) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
