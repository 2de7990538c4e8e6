"""Checks that run before training, so that a mistake costs seconds, not an hour."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from genlab.utils.errors import ConfigError

# Every key that train.yaml and its groups put at the top level. A key outside this
# set is a typo (e.g. `trainr:` in an experiment file) that Hydra would accept.
TOP_LEVEL_KEYS = frozenset(
    {
        "task_name", "tags", "seed", "optimized_metric", "ckpt_path", "checkpoint_every_minutes",
        "data", "model", "trainer", "logger", "callbacks", "metrics", "paths",
    }
)  # fmt: skip


# The numeric keys that runs override most, and the types they must have. A string
# such as `trainer.max_epochs=ten` would otherwise fail deep inside Lightning or torch.
NUMERIC_KEYS: dict[str, type] = {
    "seed": int,
    "trainer.max_epochs": int,
    "trainer.max_steps": int,
    "data.batch_size": int,
    "data.num_workers": int,
    "data.channels": int,
    "data.image_size": int,
    "data.val_fraction": float,
    "model.latent_dim": int,
    "model.optimizer.lr": float,
    "model.lr_g": float,
    "model.lr_d": float,
    "metrics.n_samples": int,
    "metrics.every_n_epochs": int,
}


def check_numeric_types(cfg: DictConfig) -> None:
    """Reject a value of the wrong type for the keys of NUMERIC_KEYS (null is allowed)."""
    for key, expected in NUMERIC_KEYS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        allowed = (int, float) if expected is float else (int,)
        if isinstance(value, bool) or not isinstance(value, allowed):
            kind = "a number" if expected is float else "an integer"
            raise ConfigError(f"{key} must be {kind}, got {value!r}")


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


def check_trainer_epochs(cfg: DictConfig) -> None:
    """`trainer.max_epochs=0` would train nothing, save no checkpoint and still complete."""
    max_epochs = cfg.trainer.get("max_epochs")
    if isinstance(max_epochs, int) and (max_epochs == 0 or max_epochs < -1):
        raise ConfigError(
            f"trainer.max_epochs={max_epochs} trains nothing and saves no checkpoint; "
            "set it to 1 or more (or -1 for no limit, with trainer.max_steps)"
        )
