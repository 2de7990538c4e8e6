"""Composing a config outside a running Hydra app: the one place that does it."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from genlab.config.schema import register_schemas
from genlab.utils.paths import config_dir
from genlab.utils.resolvers import register_resolvers


def compose_config(
    config_name: str,
    overrides: list[str],
    run_dir: Path | None = None,
    data_dir: Path | None = None,
) -> DictConfig:
    """The config `genlab-<config_name> <overrides>` composes.

    Without `run_dir`: the composition alone (what the command-line check needs; Hydra's
    own keys unresolved). With it: a config ready to run in `run_dir`, as the entry point
    would make it: every path under `run_dir` (data under `data_dir` if given) and Hydra's
    runtime config set, so that `${hydra:...}` interpolations resolve.
    """
    register_resolvers()
    register_schemas()
    GlobalHydra.instance().clear()
    if run_dir is not None:
        overrides = [
            f"paths.root_dir={run_dir}",
            f"paths.cache_dir={run_dir / 'cache'}",
            *([f"paths.data_dir={data_dir}"] if data_dir is not None else []),
            *overrides,
        ]
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
            cfg = compose(config_name, overrides, return_hydra_config=run_dir is not None)
    finally:
        GlobalHydra.instance().clear()
    if run_dir is not None:
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
            del cfg["hydra"]
    return cfg
