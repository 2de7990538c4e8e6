"""Training throughput: genlab's Trainer path against a plain PyTorch loop, window by window.

The two paths alternate inside one process: a callback on the real Trainer times a
window of iterations, then runs a window of the plain loop, then times the next
framework window. Whatever else loads the machine loads both alike, and the medians
of the windows are compared.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor
from torch.optim import Optimizer

from genlab.config.compose import compose_config
from genlab.models import GenerativeModule

# What a bench run changes from `genlab-train`'s defaults, and why:
BENCH_OVERRIDES = [
    "logger=csv",  # W&B's offline writer is a second process that competes for the cores
    "metrics=none",  # evaluation is timed on its own (benchmarks.evaluation)
    "trainer.max_epochs=-1",  # the timing callback stops the run
    "trainer.enable_model_summary=false",
    "callbacks.model_summary=null",
]


@dataclass(frozen=True)
class Span:
    """Seconds of wall-clock time and of the process's CPU time (all its threads).

    On a shared machine the CPU time counts the work done whatever else runs; the
    wall-clock time is what a user waits, and the only one that sees a GPU's work.
    """

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Span) -> Span:
        return Span(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Span) -> Span:
        return Span(self.wall - other.wall, self.cpu - other.cpu)


def clock() -> Span:
    """The current readings of both clocks."""
    return Span(time.perf_counter(), time.process_time())


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock reading means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The autocast context Lightning uses for `precision` (none for 32-true)."""
    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in dtypes:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtypes[precision])


class PlainLoop:
    """The model's networks, optimisers and data in a bare PyTorch loop: the reference.

    It runs the model's own `train_iteration` (the updates `training_step` makes, without
    Lightning's logging), with the same autocast, the same freezing of the other
    optimisers' parameters as Lightning's toggled optimiser and, for 16-mixed, a GradScaler.
    """

    def __init__(
        self,
        model: GenerativeModule,
        batches: Callable[[], Iterator],
        device: torch.device,
        precision: str,
    ) -> None:
        self.model = model.to(device).train()
        model.speed_up(device)  # model.compile, model.channels_last: as the Trainer's copy
        optimizers = model.configure_optimizers()
        self.optimizers: list[Optimizer] = (
            optimizers[0] if isinstance(optimizers, tuple) else optimizers
        )
        self.batches, self.device, self.precision = batches, device, precision
        self.scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None
        self.iterator = iter(batches())

    def next_batch(self) -> tuple[Tensor, Tensor]:
        try:
            images, labels = next(self.iterator)
        except StopIteration:  # a new epoch: reshuffle, as the Trainer does
            self.iterator = iter(self.batches())
            images, labels = next(self.iterator)
        return images.to(self.device, non_blocking=True), labels.to(self.device)

    def step(self, index: int, loss: Callable[[], Tensor]) -> None:
        """One update of optimiser `index` on `loss()`, the others' parameters frozen."""
        others = [
            p
            for i, optimizer in enumerate(self.optimizers)
            if i != index
            for group in optimizer.param_groups
            for p in group["params"]
        ]
        for p in others:
            p.requires_grad_(False)
        try:
            self.update(self.optimizers[index], loss())
        finally:
            for p in others:
                p.requires_grad_(True)

    def update(self, optimizer: Optimizer, loss: Tensor) -> None:
        """zero_grad, backward, step: scaled under 16-mixed."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()

    def run(self, steps: int) -> Span:
        """The time of `steps` iterations."""
        synchronize(self.device)
        start = clock()
        for _ in range(steps):
            with autocast(self.device, self.precision):
                self.model.train_iteration(self.next_batch(), self.step)
        synchronize(self.device)
        return clock() - start


class InterleavedTimer(pl.Callback):
    """Times the Trainer's iterations end to end and runs the plain loop between windows.

    An interval runs from one `on_train_batch_end` to the next, so it holds the data
    loading, every hook, logging and the progress bar. The first interval of each epoch
    also holds the previous epoch's validation and checkpoint: it is not counted, but
    kept apart as the epoch's boundary.
    After `warmup` counted intervals (and as many untimed plain steps) come `windows`
    pairs: `window` framework iterations, then `window` plain ones. One more window of
    each path runs under cProfile, untimed, to count the function calls (Python and C
    builtins) per iteration: a measure of the Python work that does not depend on what
    else runs on the machine. The run then stops and the results go to `out` as JSON.

    Args:
        model: a second, independent instance of the run's model, for the plain loop.
        precision: the run's `trainer.precision`.
    """

    def __init__(
        self,
        model: GenerativeModule,
        precision: str,
        out: str,
        warmup: int = 10,
        window: int = 20,
        windows: int = 5,
    ) -> None:
        super().__init__()
        self.plain_model, self.precision, self.out = model, precision, Path(out)
        self.warmup, self.window, self.windows = warmup, window, windows
        self.plain: PlainLoop | None = None
        self.framework: list[Span] = []
        self.plain_windows: list[Span] = []
        self.boundary_s: list[float] = []
        self.warmed_up = warmup == 0
        self.counted = 0  # intervals counted towards the current warm-up or window
        self.elapsed = Span()
        self.last: Span | None = None
        self.batch_size = 0
        self.profiler: cProfile.Profile | None = None  # counting the calls of a window
        self.calls: dict[str, float] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        device = trainer.strategy.root_device
        self.plain = PlainLoop(
            self.plain_model, trainer.datamodule.train_dataloader, device, self.precision
        )

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert self.plain is not None, "on_fit_start builds the plain loop"
        synchronize(trainer.strategy.root_device)
        now = clock()
        if self.last is None or batch_idx == 0:
            if self.last is not None:
                self.boundary_s.append((now - self.last).wall)
            if self.profiler is not None:  # an epoch's end fell in the counted window: again
                self.profiler.disable()
                self.profiler, self.counted = cProfile.Profile(), 0
                self.profiler.enable()
            self.last = now
            return
        if self.profiler is not None:
            self.count_calls(trainer)
            return
        self.elapsed += now - self.last
        self.counted += 1
        self.batch_size = batch[0].shape[0]
        if self.counted == (self.window if self.warmed_up else self.warmup):
            if self.warmed_up:
                self.framework.append(self.elapsed)
                self.plain_windows.append(self.plain.run(self.window))
            else:
                self.plain.run(self.warmup)
                self.warmed_up = True
            self.counted, self.elapsed = 0, Span()
            if len(self.framework) == self.windows:  # the timed windows are done
                self.profiler = cProfile.Profile()
                self.profiler.enable()
        self.last = clock()

    def count_calls(self, trainer: pl.Trainer) -> None:
        """Count one more framework iteration; after a window, count the plain loop's and stop."""
        assert self.plain is not None and self.profiler is not None
        self.counted += 1
        if self.counted < self.window:
            return
        self.profiler.disable()
        self.calls["framework"] = pstats.Stats(self.profiler).total_calls / self.window
        self.profiler = None
        plain = cProfile.Profile()
        plain.runcall(self.plain.run, self.window)
        self.calls["plain"] = pstats.Stats(plain).total_calls / self.window
        trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out.write_text(json.dumps(self.summary(), indent=2))

    def summary(self) -> dict[str, Any]:
        """Median images/s and ms per iteration of each path, from the paired windows.

        Per pair: neighbouring windows share the machine's load, so their ratio (and
        their difference, the Trainer's cost per iteration) is steadier than the
        ratio of the two medians. `*_cpu_ms` are the same in process CPU time.
        """
        pairs = list(zip(self.plain_windows, self.framework, strict=True))

        def per_iteration_ms(values: Iterable[float]) -> float:
            return statistics.median(values) / self.window * 1000

        framework_s = [span.wall for span in self.framework]
        plain_s = [span.wall for span in self.plain_windows]
        images = self.window * self.batch_size
        step_ms = per_iteration_ms(framework_s)
        return {
            "framework_img_s": images / statistics.median(framework_s),
            "plain_img_s": images / statistics.median(plain_s),
            "ratio": statistics.median(plain.wall / framework.wall for plain, framework in pairs),
            "framework_step_ms": step_ms,
            "plain_step_ms": per_iteration_ms(plain_s),
            "overhead_ms": per_iteration_ms(f.wall - p.wall for p, f in pairs),
            "framework_step_cpu_ms": per_iteration_ms(span.cpu for span in self.framework),
            "plain_step_cpu_ms": per_iteration_ms(span.cpu for span in self.plain_windows),
            "overhead_cpu_ms": per_iteration_ms(f.cpu - p.cpu for p, f in pairs),
            "framework_calls": self.calls["framework"],  # function calls per iteration
            "plain_calls": self.calls["plain"],
            "overhead_calls": self.calls["framework"] - self.calls["plain"],
            # an epoch's end (validation, checkpoints, sample grids) beyond one iteration
            "epoch_end_ms": (
                statistics.median(self.boundary_s) * 1000 - step_ms if self.boundary_s else None
            ),
            "window_iterations": self.window,
            "framework_window_s": framework_s,
            "plain_window_s": plain_s,
        }


def training_config(
    model: str, precision: str, batch_size: int, run_dir: Path, extra_overrides: list[str]
) -> DictConfig:
    """The composed `genlab-train` config of one bench run (BENCH_OVERRIDES applied)."""
    return compose_config(
        "train",
        [
            *BENCH_OVERRIDES,
            f"model={model}",
            f"trainer.precision={precision}",
            f"data.batch_size={batch_size}",
            *(["trainer.benchmark=true"] if torch.cuda.is_available() else []),
            *extra_overrides,
        ],
        run_dir,
    )


def timed_fit(cfg: DictConfig, run_dir: Path, warmup: int, window: int, windows: int) -> dict:
    """Fit `cfg` through `genlab.train.train` with an InterleavedTimer; its summary."""
    from genlab.train import train  # registers the resolvers it needs, as the entry point does

    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "timing.json"
    with open_dict(cfg):
        cfg.callbacks.bench_timer = OmegaConf.create(
            {
                "_target_": f"{__name__}.InterleavedTimer",
                "model": OmegaConf.to_container(cfg.model),  # built again: a separate instance
                "precision": cfg.trainer.precision,
                "out": str(out),
                "warmup": warmup,
                "window": window,
                "windows": windows,
            }
        )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train(cfg)
    result = json.loads(out.read_text())
    if torch.cuda.is_available():
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def bench_training(
    model: str,
    precision: str,
    batch_size: int,
    warmup: int,
    window: int,
    windows: int,
    run_dir: Path,
    extra_overrides: list[str],
) -> dict[str, Any]:
    """Images/s of `model` through genlab's Trainer and through the plain loop, paired."""
    cfg = training_config(model, precision, batch_size, run_dir, extra_overrides)
    result = {"model": model, "precision": precision, "batch_size": batch_size}
    return result | timed_fit(cfg, run_dir, warmup, window, windows)
