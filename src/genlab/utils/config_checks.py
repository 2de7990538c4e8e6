"""Checks that run before training, so that a mistake costs seconds, not an hour."""

from __future__ import annotations

from omegaconf import DictConfig

from genlab.utils.errors import ConfigError

# Every key that train.yaml and its groups put at the top level. A key outside this
# set is a typo (e.g. `trainr:` in an experiment file) that Hydra would accept.
TOP_LEVEL_KEYS = frozenset(
    {
        "task_name", "tags", "seed", "optimized_metric", "ckpt_path",
        "data", "model", "trainer", "logger", "callbacks", "metrics", "paths",
    }
)  # fmt: skip


def check_top_level_keys(cfg: DictConfig) -> None:
    """Reject keys that no part of genlab reads."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown top-level config key(s) {', '.join(unknown)}; "
            f"valid keys are {', '.join(sorted(TOP_LEVEL_KEYS))}"
        )


def check_trainer_steps(cfg: DictConfig) -> None:
    """`trainer.max_steps` counts training iterations; -1 means no limit."""
    max_steps = cfg.trainer.get("max_steps", -1)
    if not isinstance(max_steps, int) or max_steps < -1 or max_steps == 0:
        raise ConfigError(
            f"trainer.max_steps must be a positive number of iterations or -1, got {max_steps!r}"
        )
