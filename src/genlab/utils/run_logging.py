"""What the entry point records about a run: config, parameter counts, W&B run and status."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from genlab.compat import tensorboard_file_writer

log = logging.getLogger("genlab")


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters of each top-level network and of the whole model."""
    counts = {
        f"params/{name}": sum(p.numel() for p in child.parameters() if p.requires_grad)
        for name, child in model.named_children()
    }
    counts["params/total"] = sum(counts.values())
    return counts


def log_hyperparameters(trainer: pl.Trainer, config: dict[str, Any], model: nn.Module) -> None:
    """Send the resolved config and parameter counts to every logger (W&B config, CSV and
    TensorBoard hparams.yaml, TensorBoard's HPARAMS tab)."""
    hparams = {**config, **parameter_counts(model)}
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)
        if isinstance(logger, TensorBoardLogger):
            log_tensorboard_hparams(logger, hparams)


def flat_scalars(tree: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested config as {"model/optimizer/lr": 0.0002, ...}; lists and None become text."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_scalars(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, bool | int | float | str) else str(value)
            )
    return flat


@rank_zero_only
def log_tensorboard_hparams(logger: TensorBoardLogger, hparams: dict[str, Any]) -> None:
    """Write the record TensorBoard's HPARAMS tab reads, naming the run's optimized metric.

    Lightning writes it only together with a placeholder `hp_metric` scalar, which
    `default_hp_metric: false` turns off; the tab then shows the real metric's last value.
    """
    from torch.utils.tensorboard.summary import hparams as hparams_summaries  # 0.2 s: only here

    metric = hparams.get("optimized_metric")
    metrics = {metric: 0.0} if metric else {}  # only the names are written, not the values
    writer = tensorboard_file_writer(logger.experiment)  # the one Lightning writes with
    for summary in hparams_summaries(flat_scalars(hparams), metrics):
        writer.add_summary(summary)


def continue_wandb_run(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """Point the W&B logger at the run a resumed checkpoint came from, unless
    `logger.wandb.id` names one already, so its curves continue where they stopped."""
    wandb_cfg = OmegaConf.select(cfg, "logger.wandb")
    run_id = checkpoint.get("wandb_run_id")
    if wandb_cfg is None or run_id is None or wandb_cfg.get("id") is not None:
        return
    with open_dict(wandb_cfg):
        wandb_cfg.id = run_id
        wandb_cfg.resume = "allow"  # passed on to wandb.init


def finish_wandb(exit_code: int) -> None:
    """Close the W&B run, marking it failed on a non-zero code, so sweep jobs never share one.

    An offline run whose folder was deleted meanwhile has nothing left to upload: W&B's
    closing lines (its summary and "wandb sync <that folder>") are replaced by a warning.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    settings = wandb.run.settings
    if settings.mode not in ("offline", "dryrun") or Path(settings.sync_file).is_file():
        wandb.finish(exit_code=exit_code)
        return
    log.warning(
        "the W&B run folder %s was deleted during the run: its W&B record is lost and there "
        "is nothing to `wandb sync`; the checkpoints and the CSV log are unaffected",
        settings.sync_dir,
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        wandb.finish(exit_code=exit_code)
