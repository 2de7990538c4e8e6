"""`make bench` / `python -m benchmarks`: measure, print a table, write a JSON file.

python -m benchmarks                 # GAN and VAE, 32-true and bf16-mixed, the per-iteration
                                        # breakdown, 10k-sample FID
python -m benchmarks --quick         # the same in seconds (a smoke test, not a measurement)
python -m benchmarks --override model/net=seed --models gan --skip-breakdown
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from benchmarks.evaluation import bench_evaluation
from benchmarks.overhead import bench_overhead
from benchmarks.report import environment, peak_rss_mb, render
from benchmarks.sampling import bench_sampling
from benchmarks.training import bench_training
from genlab.config.paths import group_options
from genlab.errors import user_errors_reported

#: the breakdown's settings in a --quick run: the two ends
QUICK_BREAKDOWN = ["lightning", "genlab"]


def default_precisions() -> list[str]:
    """32-true and bf16-mixed everywhere, and 16-mixed where CUDA runs it."""
    return ["32-true", "bf16-mixed", *(["16-mixed"] if torch.cuda.is_available() else [])]


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="genlab's training and evaluation benchmark")
    parser.add_argument("--quick", action="store_true", help="few, short windows; 1,000 samples")
    parser.add_argument("--out", type=Path, help="JSON file (default outputs/bench/<time>.json)")
    families = group_options("model")
    parser.add_argument(
        "--models", nargs="+", default=families, choices=families,
        help="families (options of conf/model/) of the throughput table and the breakdown",
    )  # fmt: skip
    parser.add_argument("--precisions", nargs="+", default=default_precisions())
    parser.add_argument("--batch-size", type=positive, default=64)
    parser.add_argument("--warmup", type=int, default=10, help="iterations before timing")
    parser.add_argument("--window", type=positive, default=20, help="iterations per timed window")
    parser.add_argument("--windows", type=positive, default=7, help="timed windows per path")
    parser.add_argument(
        "--samples", type=positive, default=10_000, help="images for generation/FID"
    )
    parser.add_argument("--extractor", default="lenet", choices=["lenet", "inception"])
    parser.add_argument(
        "--breakdown-window",
        type=positive,
        default=50,
        help="iterations per timed window of the per-iteration breakdown",
    )
    parser.add_argument(
        "--breakdown-settings",
        nargs="+",
        metavar="KEY",
        help="only these settings of the breakdown (lightning, logging, callbacks.NAME, "
        "metrics, genlab)",
    )
    parser.add_argument("--skip-training", action="store_true", help="no throughput table")
    parser.add_argument("--skip-breakdown", action="store_true", help="no per-iteration breakdown")
    parser.add_argument("--skip-eval", action="store_true", help="no evaluation table")
    parser.add_argument("--skip-sampling", action="store_true", help="no sampling table")
    parser.add_argument(
        "--sampling-nfe", type=positive, default=20, help="NFE of every sampler's timed run"
    )
    parser.add_argument(
        "--sampling-samples", type=positive, default=256, help="images per timed sampler run"
    )
    parser.add_argument(
        "--override", action="append", default=[], help="a Hydra override for every run (repeat)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.window, args.windows, args.samples = 2, 3, 3, 1000
        args.breakdown_window = 3
        args.sampling_nfe, args.sampling_samples = 4, 16
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every measurement the arguments ask for, as one JSON-ready dict."""
    result: dict[str, Any] = {"environment": environment(), "quick": args.quick}
    result["settings"] = {
        "warmup": args.warmup,
        "window": args.window,
        "windows": args.windows,
        "breakdown_window": args.breakdown_window,
        "batch_size": args.batch_size,
        "samples": args.samples,
        "overrides": args.override,
    }
    result["training"] = [
        bench_training(
            model,
            precision,
            args.batch_size,
            args.warmup,
            args.window,
            args.windows,
            workdir / f"{model}_{precision}",
            args.override,
        )
        for model in ([] if args.skip_training else args.models)
        for precision in args.precisions
    ]
    if not args.skip_breakdown:
        result["breakdown"] = [
            bench_overhead(
                model,
                args.batch_size,
                args.warmup,
                args.breakdown_window,
                args.windows,
                workdir / f"breakdown_{model}",
                args.override,
                keys=args.breakdown_settings or (QUICK_BREAKDOWN if args.quick else None),
            )
            for model in args.models
        ]
    if not args.skip_eval:
        result["evaluation"] = bench_evaluation(
            args.samples, 500, args.extractor, workdir / "eval", args.override
        )
    if not args.skip_sampling:
        result["sampling"] = {
            "nfe": args.sampling_nfe,
            "rows": bench_sampling(args.sampling_nfe, args.sampling_samples, args.batch_size,
                                   workdir / "sampling", args.override),
        }  # fmt: skip
    result["memory"] = {"peak_rss_mb": peak_rss_mb()}
    if torch.cuda.is_available() and result["training"]:
        result["memory"]["cuda_max_allocated_mb"] = max(
            row["cuda_max_allocated_mb"] for row in result["training"]
        )
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    out = args.out or Path("outputs/bench") / f"{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    with (
        user_errors_reported(),
        tempfile.TemporaryDirectory(prefix="genlab-bench-") as workdir,
    ):
        result = run(args, Path(workdir))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console = Console(width=None if sys.stdout.isatty() else 160)  # not 80 columns in a log
    render(result, console)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
