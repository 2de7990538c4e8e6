"""Composed configs and the settings of tiny real runs, shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from genlab.utils.paths import config_dir

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


# ... with no metrics at all, logged to CSV: runs that check checkpoints, resume and faults.
TINY_RUN_NO_METRICS = [*TINY_RUN_WITHOUT_METRICS, "metrics=none", "logger=csv"]
