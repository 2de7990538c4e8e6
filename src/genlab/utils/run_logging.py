"""What the entry point records about a run: config, parameter counts, W&B run and status."""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters of each top-level network and of the whole model."""
    counts = {
        f"params/{name}": sum(p.numel() for p in child.parameters() if p.requires_grad)
        for name, child in model.named_children()
    }
    counts["params/total"] = sum(counts.values())
    return counts


def log_hyperparameters(trainer: pl.Trainer, config: dict[str, Any], model: nn.Module) -> None:
    """Send the resolved config and parameter counts to every logger (W&B config, CSV hparams)."""
    hparams = {**config, **parameter_counts(model)}
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)


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
    """Close the W&B run, marking it failed on a non-zero code, so sweep jobs never share one."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)
