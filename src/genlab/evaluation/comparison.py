"""One table for several sources scored against the same reference with the same extractor.

Written as Markdown (`<table>.md`, with the reference, extractor and held-out baselines
above the table) and CSV (`<table>.csv`, one row per source, every column, the reference
and extractor repeated in each row so that a row read alone still says what it means),
and printed with rich.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from genlab.evaluation.metric_registry import METRICS
from genlab.utils.files import write_atomically

# (results key, column header) in table order: the registry's columns
COLUMNS = tuple((m.key, m.header) for m in METRICS if m.column)
# Properties of the reference, the same in every row: stated above the Markdown table.
BASELINES = (
    ("copied_fraction_heldout", "copied"),
    ("authenticity_heldout", "authenticity"),
    ("nn_pixel_distance_median_heldout", "NN pixel dist."),
    ("nn_feature_distance_median_heldout", "NN feature dist."),
)


def formatted(result: dict[str, Any], key: str) -> str:
    """A value for the tables: 4 significant digits, `mean ± std` over seeds, `-` if absent."""
    value = result.get(key)
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = f"{value:.4g}"
    spread = result.get(f"{key}_seeds_std")
    return text if spread is None else f"{text} ± {spread:.2g}"


def shown_columns(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The columns that hold a value for at least one source."""
    return [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in results)]


def header_lines(results: list[dict[str, Any]]) -> list[str]:
    """What every row shares: reference, extractor and its weights, held-out baselines."""
    first = results[0]
    lines = [
        f"Reference: {first['reference']} ({first['reference_kind']}, {first['n_real']} images); "
        f"extractor: {first['extractor']} (weights sha256 {first['weights_sha256'][:12]}); "
        f"seeds per source: {first.get('repeats', 1)}.",
    ]
    baseline = [f"{h} {formatted(first, k)}" for k, h in BASELINES if first.get(k) is not None]
    if baseline:
        lines.append(
            f"Held-out real images against the {first['memorization_train_images']} training "
            f"images: {', '.join(baseline)}."
        )
    return lines


def markdown(results: list[dict[str, Any]]) -> str:
    """The Markdown table, with the shared facts above it."""
    columns = shown_columns(results)
    rows = [
        "| source | kind | " + " | ".join(h for _, h in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for result in results:
        cells = [formatted(result, k) for k, _ in columns]
        rows.append(f"| {result['source']} | {result['source_kind']} | " + " | ".join(cells) + " |")
    return "\n".join([*header_lines(results), "", *rows]) + "\n"


def csv_text(results: list[dict[str, Any]]) -> str:
    """Every column for every source (empty where a metric does not apply)."""
    keys = ["source", "source_kind"]
    for key, _ in COLUMNS:
        keys += [key, f"{key}_seeds_std"]
    keys += [k for k, _ in BASELINES]
    keys += ["reference", "reference_kind", "n_real", "extractor", "weights_sha256", "repeats"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow({key: result.get(key, "") for key in keys})
    return buffer.getvalue()


def write_comparison(results: list[dict[str, Any]], stem: Path) -> tuple[Path, Path]:
    """`<stem>.md` and `<stem>.csv`, each written atomically."""
    written = []
    for suffix, text in ((".md", markdown(results)), (".csv", csv_text(results))):
        path = stem.with_name(stem.name + suffix)
        write_atomically(path, lambda tmp, text=text: tmp.write_text(text))
        written.append(path)
    return written[0], written[1]


def print_comparison(results: list[dict[str, Any]], title: str) -> None:
    """The comparison as a rich table, with the shared facts below it."""
    columns = shown_columns(results)
    table = Table(title=title)
    table.add_column("source")
    table.add_column("kind")
    for _, header in columns:
        table.add_column(header, justify="right")
    for result in results:
        table.add_row(
            result["source"], result["source_kind"], *(formatted(result, k) for k, _ in columns)
        )
    console = Console()
    console.print(table)
    for line in header_lines(results):
        console.print(line)
