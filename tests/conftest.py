"""Shared fixtures: offline W&B, composed configs, tiny run settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from genlab.utils.paths import config_dir
from genlab.utils.resolvers import register_resolvers

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
register_resolvers()

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
    """Compose a genlab config the way the entry point does, with paths under `run_dir`."""
    GlobalHydra.instance().clear()
    path_overrides = [
        f"paths.root_dir={run_dir}",
        f"paths.cache_dir={run_dir / 'cache'}",
        f"paths.data_dir={data_dir or run_dir / 'data'}",
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose(
            config_name=config_name,
            overrides=path_overrides + overrides,
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        del cfg["hydra"]
    return cfg


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """`make_config(name, overrides, data_dir)` -> a config composed with paths in tmp_path."""

    def _make(
        config_name: str = "train",
        overrides: list[str] | None = None,
        data_dir: Path | None = None,
    ) -> DictConfig:
        return compose_config(config_name, overrides or [], tmp_path, data_dir)

    return _make
