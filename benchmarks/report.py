"""What a benchmark ran on, how much memory it took, and its table."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import sys
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

PACKAGES = ("genlab", "torch", "pytorch-lightning", "torchmetrics", "hydra-core")


def cpu_name() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Date, versions and the device, so that a table can be compared with a later one."""
    cuda = torch.cuda.is_available()
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def pair(wall: float | None, cpu: float | None) -> str:
    """`wall / CPU` milliseconds, signed, or a dash where not measured."""
    if wall is None or cpu is None:
        return "-"
    return f"{wall:+.3f} / {cpu:+.3f}"


def render_breakdown(breakdown: dict[str, Any], console: Console) -> None:
    """The per-iteration cost of each Trainer setting with near-zero networks."""
    table = Table(
        title=(
            f"per-iteration cost, {breakdown['model']} with near-zero networks, batch "
            f"{breakdown['batch_size']}, {breakdown['threads']} thread (ms, median of windows)"
        )
    )
    for column in ("setting", "Trainer", "plain loop", "Trainer - plain (wall / CPU)",
                   "added (wall / CPU)", "calls/it: Trainer - plain (added)",
                   "epoch end"):  # fmt: skip
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in breakdown["rows"]:
        epoch_end, added_calls = row["epoch_end_ms"], row["added_calls"]
        table.add_row(
            row["setting"],
            f"{row['framework_step_ms']:.3f}",
            f"{row['plain_step_ms']:.3f}",
            pair(row["overhead_ms"], row["overhead_cpu_ms"]),
            pair(row["added_ms"], row["added_cpu_ms"]),
            f"{row['overhead_calls']:,.0f} ({added_calls:+,.0f})"
            if added_calls is not None
            else f"{row['overhead_calls']:,.0f}",
            f"{epoch_end:.0f}" if epoch_end is not None else "-",
        )
    console.print(table)
    console.print(
        f"added: over the row it builds on (logging over Lightning alone, each callback and "
        f"the metrics over logging, genlab over Lightning alone); calls: function calls per "
        f"iteration, counted by cProfile in one more window. Data path: "
        f"{breakdown['data_ms_per_batch']:.3f} ms per batch of {breakdown['batch_size']} "
        "(the DataLoader alone; both paths pay it)"
    )


def render_training(rows: list[dict[str, Any]], console: Console) -> None:
    """Images/s of the Trainer and of the plain loop, their ratio and the time between."""
    table = Table(title="training throughput (images/s, median of windows)")
    columns = ("model", "precision", "batch", "genlab Trainer", "plain loop", "ratio",
               "Trainer - plain (ms/it)")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "precision") else "right")
    for row in rows:
        table.add_row(
            row["model"],
            row["precision"],
            str(row["batch_size"]),
            f"{row['framework_img_s']:.0f}",
            f"{row['plain_img_s']:.0f}",
            f"{row['ratio']:.3f}",
            f"{row['overhead_ms']:+.2f}",
        )
    console.print(table)


def render_sampling(sampling: dict[str, Any], console: Console) -> None:
    """Every sampler of every iterative family at (up to) the same NFE, against its network."""
    table = Table(
        title=f"sampling at NFE <= {sampling['nfe']}: each sampler against its bare network passes"
    )
    for column in ("family", "solver", "steps", "NFE", "img/s", "network img/s", "overhead"):
        table.add_column(column, justify="left" if column in ("family", "solver") else "right")
    for row in sampling["rows"]:
        table.add_row(
            row["family"], row["solver"], str(row["steps"]), str(row["nfe"]),
            f"{row['images_per_second']:,.1f}", f"{row['network_images_per_second']:,.1f}",
            f"{row['overhead']:+.1%}",
        )  # fmt: skip
    console.print(table)


def render(result: dict[str, Any], console: Console) -> None:
    """Print the training, evaluation and sampling tables and the memory line."""
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    console.print(
        f"[bold]genlab bench[/] {env['date']} on {env['device']} ({env['cpu']}, "
        f"{env['torch_threads']} threads); {versions}"
    )
    if result["training"]:
        render_training(result["training"], console)
    for breakdown in result.get("breakdown", []):
        render_breakdown(breakdown, console)
    ev = result.get("evaluation")
    if ev:
        table = Table(title=f"evaluation, {ev['n_samples']:,} samples, {ev['extractor']} features")
        table.add_column("step")
        table.add_column("time / throughput", justify="right")
        rows = [
            ("generate (GAN)", f"{ev['generate_gan_img_s']:,.0f} img/s"),
            ("generate (VAE)", f"{ev['generate_vae_img_s']:,.0f} img/s"),
            (
                f"real features, {ev['n_real']} images (cache miss)",
                f"{ev['real_features_s']:.3f} s",
            ),
            ("the same, from the cache", f"{ev['real_features_cached_s']:.3f} s"),
            ("feature extraction of the samples", f"{ev['features_s']:.3f} s"),
            ("Frechet distance", f"{ev['frechet_s']:.3f} s"),
            ("FID evaluation (features + distance)", f"{ev['fid_eval_s']:.3f} s"),
            ("KID and IS", f"{ev['kid_is_s']:.3f} s"),
        ]
        for step, value in rows:
            table.add_row(step, value)
        console.print(table)
    if result.get("sampling"):
        render_sampling(result["sampling"], console)
    memory = result["memory"]
    cuda = memory.get("cuda_max_allocated_mb")
    cuda_text = f", CUDA max allocated {cuda:.0f} MiB" if cuda is not None else ""
    console.print(f"peak RSS {memory['peak_rss_mb']:.0f} MiB{cuda_text}")
