"""Checks that run before training, so that a mistake costs seconds, not an hour."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from genlab.errors import ConfigError

# genlab-sample's and genlab-eval's numeric keys: their type, and the least value that works.
SAMPLE_KEYS: dict[str, tuple[type, int]] = {
    "n": (int, 1),
    "nrow": (int, 1),
    "seed": (int, 0),
    "gmm_components": (int, 1),
}
EVAL_KEYS: dict[str, tuple[type, int]] = {
    "seed": (int, 0),
    "iw_samples": (int, 1),
    "gmm_components": (int, 1),
    "pr_neighbours": (int, 1),
    "dc_neighbours": (int, 1),
    "repeats": (int, 1),
    "memorization.pairs": (int, 0),
    "memorization.ratio": (float, 0),
    "classifier_scores.n": (int, 2),
    "classifier_scores.augment_real": (int, 1),
    "classifier_scores.augment_generated": (int, 1),
    "classifier_scores.steps": (int, 1),
    "metrics.n_samples": (int, 2),
    "metrics.batch_size": (int, 1),
    "metrics.kid_subset_size": (int, 2),
    "max_network_passes": (int, 1),
}


def metrics_on(cfg: DictConfig) -> bool:
    """Whether the metrics group names a callback: `metrics=none` leaves none, though an
    experiment's `metrics:` keys (n_samples, every_n_epochs) may remain with nothing to set."""
    return bool(cfg.get("metrics")) and "_target_" in cfg.metrics


def check_numeric_types(cfg: DictConfig, keys: dict[str, type]) -> None:
    """Reject a value of the wrong type for the keys of `keys` (null is allowed)."""
    for key, expected in keys.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        allowed = (int, float) if expected is float else (int,)
        if isinstance(value, bool) or not isinstance(value, allowed):
            kind = "a number" if expected is float else "an integer"
            raise ConfigError(f"{key} must be {kind}, got {value!r}")


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


def check_numbers(cfg: DictConfig, keys: dict[str, tuple[type, int]]) -> None:
    """Reject a value of the wrong type or below its least value, for each key of `keys`."""
    check_numeric_types(cfg, {key: expected for key, (expected, _) in keys.items()})
    for key, (_, least) in keys.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value < least:
            raise ConfigError(f"{key} must be >= {least}, got {value}")


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def sampling_overrides(sampling: Any) -> dict[str, Any]:
    """The `sampling` options a user set (the non-null ones of eval/sample's `sampling`)."""
    if sampling is None:
        return {}
    return {key: value for key, value in dict(sampling).items() if value is not None}


def check_batch_norm(model: nn.Module, batch_size: int, synced: bool = False) -> None:
    """Batch norm in training mode needs two images per batch: with one, a BatchNorm1d
    fails at the first step with a long traceback (and a BatchNorm2d normalises each
    image by itself). `synced`: SyncBatchNorm pools the batch over DDP processes."""
    if batch_size > 1 or synced:
        return
    norms = [(name, type(module).__name__) for name, module in model.named_modules()
             if isinstance(module, BATCH_NORMS)]  # fmt: skip
    if norms:
        name, kind = norms[0]
        raise ConfigError(
            f"data.batch_size={batch_size} cannot train {name} ({kind}): batch norm needs at "
            "least 2 images per batch; set data.batch_size=2 or more"
        )


def check_optimized_metric(name: str | None, model: Any, metrics: Any | None) -> None:
    """`optimized_metric` must be a name the run logs: otherwise Lightning notices only at
    the first checkpoint, after a whole epoch, with a multi-line MisconfigurationException.
    `model` and `metrics` (or None) list their names in `logged_metrics()`."""
    if name is None:
        return
    logged = set(model.logged_metrics()) | {"epoch", "step"}
    if metrics is not None:
        logged |= metrics.logged_metrics()
    if name not in logged:
        raise ConfigError(
            f"optimized_metric={name} is not logged by this run, so checkpoints cannot be "
            f"ranked by it; choose one of {', '.join(sorted(logged))}, or auto"
        )
