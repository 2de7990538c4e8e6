"""Stop (or skip) a training step whose loss is NaN or infinite, before it reaches the weights.

Every loss that genlab backpropagates passes through Lightning's `on_before_backward`
hook, in automatic (VAE) and manual (GAN) optimisation alike; the guard checks it
there, which costs one host sync per backward pass.

- `action=stop`: raise NonFiniteLossError, naming the loss, its value and the step.
  Nothing is saved on the way out, so `last.ckpt` keeps the last good state; the
  entry point prints the message as one `error:` line and marks the W&B run failed.
- `action=skip`: drop the step's gradients, so that the optimiser leaves every
  weight (and its own moments) untouched, and count it in `train/skipped_steps`.
  Under DDP the ranks agree to skip when any of them saw a bad loss. A run that skips
  more than `max_skip_fraction` of its optimizer steps (checked at each epoch's end) is
  not training: it stops like `action=stop`; one that skipped fewer ends with a warning,
  which `result.yaml` keeps (`skip_summary`).
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.optim import Optimizer

from genlab.callbacks.last_checkpoint import LastCheckpoint
from genlab.utils.errors import ConfigError, GenlabError

log = logging.getLogger("genlab")

ACTIONS = ("stop", "skip")


class NonFiniteLossError(GenlabError):
    """Training produced a NaN or infinite loss (the run stops; its checkpoints are kept)."""


class NanGuard(pl.Callback):
    """Check each backpropagated loss; `action` is `stop` or `skip` (see the module)."""

    def __init__(self, action: str = "stop", max_skip_fraction: float = 0.5) -> None:
        if action not in ACTIONS:
            raise ConfigError(
                f"callbacks.nan_guard.action must be one of {', '.join(ACTIONS)}, got {action!r}"
            )
        if not isinstance(max_skip_fraction, int | float) or not 0 <= max_skip_fraction <= 1:
            raise ConfigError(
                "callbacks.nan_guard.max_skip_fraction must be a number in [0, 1], "
                f"got {max_skip_fraction!r}"
            )
        self.action = action
        self.max_skip_fraction = max_skip_fraction
        self.skipped_steps = 0
        self._backward_index = 0  # which of the batch's losses comes next
        self._batch_idx = 0
        self._skip_next_step = False

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._backward_index = 0
        self._batch_idx = batch_idx

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        index, self._backward_index = self._backward_index, self._backward_index + 1
        if bool(torch.isfinite(loss.detach()).all()):
            return
        names = getattr(pl_module, "loss_names", ())
        name = names[index] if index < len(names) else f"loss #{index + 1}"
        where = (
            f"{name} = {loss.detach().float().mean().item()} at epoch {trainer.current_epoch}, "
            f"batch {self._batch_idx} (global step {trainer.global_step})"
        )
        if self.action == "stop":
            raise NonFiniteLossError(
                f"non-finite loss {where}; {last_good_checkpoint(trainer)}; lower the learning "
                "rate or set callbacks.nan_guard.action=skip to skip such steps"
            )
        log.warning("skipping the optimizer step: non-finite loss %s", where)
        self._skip_next_step = True

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if self.action != "skip":
            return
        skip, self._skip_next_step = self._skip_next_step, False
        if trainer.world_size > 1:  # one collective per step, only with action=skip
            skip = trainer.strategy.reduce_boolean_decision(skip, all=False)
        if not skip:
            return
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None  # torch optimisers leave parameters without a gradient alone
        self.skipped_steps += 1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if self.action != "skip":
            return
        if getattr(pl_module, "logs_this_step", lambda: True)():
            pl_module.log("train/skipped_steps", float(self.skipped_steps), batch_size=1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.action != "skip" or not trainer.global_step:
            return
        if self.skipped_steps / trainer.global_step > self.max_skip_fraction:
            raise NonFiniteLossError(
                f"{self.skip_summary(trainer)}, more than callbacks.nan_guard."
                f"max_skip_fraction={self.max_skip_fraction}: the run is not training; "
                f"{last_good_checkpoint(trainer)}; lower the learning rate"
            )

    def skip_summary(self, trainer: pl.Trainer) -> str | None:
        """`skipped 3 of 120 optimizer steps (2.5%) with a non-finite loss`, or None."""
        if not self.skipped_steps:
            return None
        share = 100 * self.skipped_steps / max(trainer.global_step, 1)
        return (
            f"skipped {self.skipped_steps} of {trainer.global_step} optimizer steps "
            f"({share:.3g}%) with a non-finite loss"
        )

    def state_dict(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_steps = state_dict.get("skipped_steps", 0)


def last_good_checkpoint(trainer: pl.Trainer) -> str:
    """Where the last state saved before the failure is, for the error message."""
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint) and callback.path.is_file():
            return f"the last good checkpoint is kept: resume with ckpt_path={callback.path}"
    return "no checkpoint was saved before it"
