"""Shared fixtures: offline W&B, composed configs, tiny run settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from genlab.config.schema import register_schemas
from genlab.utils.resolvers import register_resolvers
from tests.helpers.runs import compose_config

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
