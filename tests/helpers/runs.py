"""Composed configs and the settings of tiny real runs, shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from genlab.config.compose import compose_config as compose

# `make_config(name, overrides, data_dir)`: the conftest fixture's type.
MakeConfig = Callable[..., DictConfig]

# Settings that make a real run take seconds: small batches, few batches, no summary.
TINY_RUN_WITHOUT_METRICS = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "data.batch_size=16",
    "callbacks.sample_grid.n=16",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]
# ... with FID/KID/IS on 100 samples (the metrics group's keys exist only when it is on).
TINY_RUN = [*TINY_RUN_WITHOUT_METRICS, "metrics.n_samples=100"]


def compose_config(
    config_name: str, overrides: list[str], run_dir: Path, data_dir: Path | None = None
) -> DictConfig:
    """Compose a genlab config ready to run in `run_dir`; datasets under `run_dir/data`
    unless `data_dir` is given, so that no test reads another test's files."""
    return compose(config_name, overrides, run_dir, data_dir or run_dir / "data")


# ... with no metrics at all, logged to CSV: runs that check checkpoints, resume and faults.
TINY_RUN_NO_METRICS = [*TINY_RUN_WITHOUT_METRICS, "metrics=none", "logger=csv"]


def model_options() -> list[str]:
    """Every option of the `model` config group: the families, as the config defines them."""
    from genlab.config.paths import group_options

    return group_options("model")


def iterative_model_options() -> list[str]:
    """The options of the `model` group that sample iteratively: those whose config holds
    a `sampling` node (flow, diffusion, EDM, ...), as opposed to one-pass GANs and VAEs."""
    from omegaconf import OmegaConf

    from genlab.config.paths import config_dir

    return [
        name
        for name in model_options()
        if "sampling" in OmegaConf.load(config_dir() / "model" / f"{name}.yaml")
    ]
