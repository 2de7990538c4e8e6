"""Shared fixtures: offline W&B, composed configs, tiny run settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from genlab.config.resolvers import register_resolvers
from genlab.config.schema import register_schemas
from tests.helpers.runs import compose_config

# Under pytest-xdist (make test), share the cores among the workers: each worker and the
# console scripts it starts get their share of torch's threads instead of all of them.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
register_resolvers()
register_schemas()


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
