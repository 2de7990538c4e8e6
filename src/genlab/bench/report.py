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


def render(result: dict[str, Any], console: Console) -> None:
    """Print the training table, the evaluation table and the memory line."""
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    console.print(
        f"[bold]genlab bench[/] {env['date']} on {env['device']} ({env['cpu']}, "
        f"{env['torch_threads']} threads); {versions}"
    )
    table = Table(title="training throughput (images/s, median of windows)")
    for column in ("model", "precision", "batch", "genlab Trainer", "plain loop", "ratio"):
        table.add_column(column, justify="left" if column in ("model", "precision") else "right")
    for row in result["training"]:
        table.add_row(
            row["model"],
            row["precision"],
            str(row["batch_size"]),
            f"{row['framework_img_s']:.0f}",
            f"{row['plain_img_s']:.0f}",
            f"{row['ratio']:.3f}",
        )
    console.print(table)
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
    memory = result["memory"]
    cuda = memory.get("cuda_max_allocated_mb")
    cuda_text = f", CUDA max allocated {cuda:.0f} MiB" if cuda is not None else ""
    console.print(f"peak RSS {memory['peak_rss_mb']:.0f} MiB{cuda_text}")
