"""Where the Trainer's time per step goes: its fixed cost, then each part genlab adds.

A model whose networks compute almost nothing (benchmarks.near_zero) trains through
`genlab.train.train` once per setting, window-paired with the plain loop over the same
model as `make bench` does; what a setting costs per iteration is the median, over the
pairs of windows, of (Trainer window - plain window) / iterations. The first setting is
Lightning alone (no logger, no progress bar, no `self.log`, and no callbacks but the run
config that `train` always adds and the timer); the second adds logging; each further
one adds one part to the second (some callbacks need a logger), and the last is
everything `make bench` trains with.

It runs on one intra-op thread: ops this small gain nothing from more, and on a shared
machine the threads of a parallel op wait on each other for as long as any of them is
descheduled, which would make the measurement depend on everything else running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar

from benchmarks.near_zero import near_zero_networks
from benchmarks.training import synchronize, timed_fit, training_config

#: `trainer.log_every_n_steps` that no bench run reaches: the model's `self.log` never runs
NEVER = 10**9


@dataclass(frozen=True)
class Setting:
    """One configuration of the breakdown.

    Args:
        key: a short name (`lightning`, `logging`, `callbacks.<name>`, `metrics`, `genlab`).
        label: the table's row label.
        over: the key of the setting that this one adds to (None: the plain loop).
        callbacks: names under `cfg.callbacks` that stay on (None: all of them).
        logging: the CSV logger on and the model's `self.log` every `log_every_n_steps`.
        overrides: extra Hydra overrides (e.g. a metrics group).
    """

    key: str
    label: str
    over: str | None
    callbacks: tuple[str, ...] | None = ()
    logging: bool = False
    overrides: tuple[str, ...] = ()


def settings(callback_names: list[str]) -> list[Setting]:
    """Lightning alone; logging; logging with each configured callback, the metrics; all."""
    return [
        Setting("lightning", "Lightning alone", over=None),
        Setting("logging", "+ logging (self.log, CSV)", over="lightning", logging=True),
        *(
            Setting(f"callbacks.{name}", f"+ callbacks.{name}", "logging", (name,), True)
            for name in callback_names
        ),
        Setting(
            "metrics",
            "+ metrics=fid_lenet",
            "logging",
            logging=True,
            # FID at the first validation only: its own cost is the evaluation table's
            overrides=("metrics=fid_lenet", f"metrics.every_n_epochs={NEVER}"),
        ),
        Setting("genlab", "genlab, as make bench trains", "lightning", None, True),
    ]


def apply(setting: Setting, cfg: DictConfig) -> None:
    """Switch off in `cfg` what `setting` leaves out.

    Without a progress bar or a checkpoint callback of its own, Lightning adds a
    default one; the Trainer flags keep those out too.
    """
    with open_dict(cfg):
        if setting.callbacks is not None:
            for name, node in list(cfg.callbacks.items()):
                if node is None or name in setting.callbacks:
                    continue
                kind = get_class(node._target_)
                if issubclass(kind, ProgressBar):
                    cfg.trainer.enable_progress_bar = False
                if issubclass(kind, ModelCheckpoint):
                    cfg.trainer.enable_checkpointing = False
                cfg.callbacks[name] = None
        if not setting.logging:
            cfg.logger = {}
            cfg.trainer.log_every_n_steps = NEVER


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` for the duration."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def data_ms_per_batch(cfg: DictConfig, batches: int) -> float:
    """Milliseconds per batch of the training DataLoader alone, on the bench's device."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        try:
            images, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            images, _ = next(iterator)
        images.to(device, non_blocking=True)
    synchronize(device)
    return (time.perf_counter() - start) / batches * 1000


def added(row: dict[str, Any], rows: dict[str, dict[str, Any]], key: str) -> float | None:
    """What `row` costs per iteration (`key`: `overhead_ms`, `overhead_cpu_ms` or
    `overhead_calls`) over the setting it builds on, or None when that one was not measured."""
    if row["over"] is None:  # over the plain loop
        return row[key]
    if row["over"] not in rows:
        return None
    return row[key] - rows[row["over"]][key]


def bench_overhead(
    model: str,
    batch_size: int,
    warmup: int,
    window: int,
    windows: int,
    run_dir: Path,
    extra_overrides: list[str],
    keys: list[str] | None = None,
) -> dict[str, Any]:
    """Per-iteration cost of each setting (those of `keys`, else all) for the near-zero
    `model`, what each adds to the setting it builds on, and the data path's cost.

    A run crosses several epoch ends, whose cost beyond an iteration (validation,
    checkpoints, sample grids) is reported apart as `epoch_end_ms`.
    """
    base = training_config(model, "32-true", batch_size, run_dir, extra_overrides)
    callbacks = [name for name, node in base.callbacks.items() if node is not None]
    chosen = [s for s in settings(callbacks) if keys is None or s.key in keys]
    rows: dict[str, dict[str, Any]] = {}
    with intra_op_threads(1):
        for setting in chosen:
            where = run_dir / f"{model}_{setting.key}"
            overrides = [*extra_overrides, *setting.overrides]
            cfg = training_config(model, "32-true", batch_size, where, overrides)
            near_zero_networks(cfg)
            apply(setting, cfg)
            rows[setting.key] = {"key": setting.key, "setting": setting.label, "over": setting.over}
            rows[setting.key] |= timed_fit(cfg, where, warmup, window, windows)
        data_ms = data_ms_per_batch(base, 4 * windows * window)
    for row in rows.values():
        row["added_ms"] = added(row, rows, "overhead_ms")
        row["added_cpu_ms"] = added(row, rows, "overhead_cpu_ms")
        row["added_calls"] = added(row, rows, "overhead_calls")
    return {
        "model": model,
        "batch_size": batch_size,
        "threads": 1,
        "rows": list(rows.values()),
        "data_ms_per_batch": data_ms,
    }
