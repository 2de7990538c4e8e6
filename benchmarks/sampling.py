"""Sampling cost of every sampler on every iterative family at equal NFE, against the bare
network: what a sampler adds to its network passes (`make bench`, the sampling table).

For each family of the `model` config group that samples iteratively, and each fixed-step
sampler, the step count whose NFE on the family's own grid comes closest to `nfe` from
below is timed through `generate` (noise, guidance-free sampling, clamping), beside `nfe`
passes of the network alone on the same batch. The networks are untrained: the time does
not depend on the weights.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.evaluation import timed
from benchmarks.training import BENCH_OVERRIDES
from genlab.config.compose import compose_config
from genlab.config.instantiate import build
from genlab.config.paths import group_options
from genlab.denoising.grids import noise_levels
from genlab.denoising.samplers import SAMPLERS
from genlab.models.iterative import IterativeModule


def steps_for(model: IterativeModule, solver: str, nfe: int) -> tuple[int, int]:
    """The most steps whose NFE on the model's own grid is at most `nfe`, and that NFE."""
    spec = SAMPLERS[solver]
    best = (1, spec.nfe(noise_levels(model.process, "own", 1)))
    for steps in range(1, nfe + 1):
        cost = spec.nfe(noise_levels(model.process, "own", steps))
        if cost is not None and cost <= nfe:
            best = (steps, cost)
    return best


@torch.no_grad()
def network_passes(net: torch.nn.Module, noise: torch.Tensor, time: torch.Tensor, n: int) -> None:
    """`n` passes of the bare network."""
    for _ in range(n):
        net(noise, time)


def bench_sampling(
    nfe: int, n_samples: int, batch_size: int, run_dir: Path, extra_overrides: list[str]
) -> list[dict[str, Any]]:
    """One row per (family, sampler): images/s of the sampler and of its NFE bare passes."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for family in group_options("model"):
        cfg = compose_config("train", [*BENCH_OVERRIDES, f"model={family}", *extra_overrides],
                             run_dir)  # fmt: skip
        model = build("model", cfg.model).to(device).eval()
        if not isinstance(model, IterativeModule):
            continue
        noise = torch.randn(batch_size, *model.noise_shape, device=device)
        time = torch.full((batch_size,), 0.5, device=device)
        for solver, spec in SAMPLERS.items():
            if spec.nfe(noise_levels(model.process, "own", 2)) is None:
                continue  # adaptive: no fixed NFE to match
            steps, cost = steps_for(model, solver, nfe)
            batches = max(1, n_samples // batch_size)
            sample = partial(
                model.generate, batches * batch_size, generator=torch.Generator().manual_seed(0),
                batch_size=batch_size, solver=solver, steps=steps,
            )  # fmt: skip
            sample()  # warm-up: allocator, kernels
            _, seconds = timed(sample, device)
            _, bare = timed(partial(network_passes, model.net, noise, time, cost * batches), device)
            rows.append({
                "family": family, "solver": solver, "steps": steps, "nfe": cost,
                "images_per_second": batches * batch_size / seconds,
                "network_images_per_second": batches * batch_size / bare,
                "overhead": seconds / bare - 1,
            })  # fmt: skip
    return rows
