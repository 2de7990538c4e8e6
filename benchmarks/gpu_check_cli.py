"""`make gpu-check` / `python -m benchmarks.gpu_check_cli`: run the rows, print a table, write JSON.

python -m benchmarks.gpu_check_cli                     # every row, within 5 minutes
python -m benchmarks.gpu_check_cli --budget 600        # more time: the compile rows come last
python -m benchmarks.gpu_check_cli --only ddp fid      # some sections
python -m benchmarks.gpu_check_cli --dry-run           # every row on the CPU with tiny sizes
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.gpu_check import DRY_RUN, GPU, SECTIONS, plan, run_checks
from benchmarks.report import environment

NO_GPU = (
    "gpu-check: no CUDA GPU is visible, so there is nothing to measure "
    "(make gpu-check ARGS=--dry-run runs every row on the CPU)"
)


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="genlab's GPU check: one table, one JSON file")
    parser.add_argument("--dry-run", action="store_true", help="every row on the CPU, tiny")
    parser.add_argument(
        "--budget", type=positive_seconds, default=300.0, help="total seconds (default 300)"
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--out", type=Path, help="JSON file (default outputs/gpu-check/<time>.json)"
    )
    return parser.parse_args(argv)


def nvidia_driver() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi (None where it cannot be read)."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.splitlines()[0].strip() if done.stdout.strip() else None


def gpu_info() -> dict[str, Any] | None:
    """The GPUs this check ran on, with the driver and library versions."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "count": torch.cuda.device_count(),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "driver": nvidia_driver(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def render(result: dict[str, Any], console: Console) -> None:
    """One table: a line per row, with its result, error or note."""
    env, gpu = result["environment"], result["gpu"]
    where = f"{gpu['count']} x {gpu['name']} (driver {gpu['driver']})" if gpu else "CPU"
    kind = "dry run" if result["dry_run"] else "check"
    console.print(
        f"[bold]genlab gpu-check[/] ({kind}) {env['date']} on {where}; torch "
        f"{env['versions']['torch']}, budget {result['budget_s']:.0f} s"
    )
    table = Table(title="GPU check")
    for column in ("section", "check", "status", "result", "peak GPU MiB", "s"):
        table.add_column(column, justify="right" if column in ("peak GPU MiB", "s") else "left")
    for row in result["rows"]:
        text = row.get("result") or row.get("error") or row.get("note") or ""
        peak, seconds = row.get("peak_gpu_mib"), row.get("seconds")
        table.add_row(
            row["section"],
            row["check"],
            row["status"],
            text,
            f"{peak:,.0f}" if peak is not None else "-",
            f"{seconds:.1f}" if seconds is not None else "-",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(NO_GPU)
        return
    os.environ.setdefault("WANDB_MODE", "offline")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    if args.dry_run:  # tiny ops gain nothing from threads, and a shared CPU makes them wait
        torch.set_num_threads(1)
    sizes = DRY_RUN if args.dry_run else GPU
    stamp = f"{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}"
    out = args.out or Path("outputs/gpu-check") / f"{stamp}.json"
    with tempfile.TemporaryDirectory(prefix="genlab-gpu-check-") as workdir:
        rows = run_checks(plan(sizes, Path(workdir), args.dry_run, args.only), args.budget)
    result = {
        "environment": environment(),
        "gpu": gpu_info(),
        "dry_run": args.dry_run,
        "budget_s": args.budget,
        "sections": args.only,
        "sizes": dataclasses.asdict(sizes),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console = Console(width=None if sys.stdout.isatty() else 160)  # not 80 columns in a log
    render(result, console)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
