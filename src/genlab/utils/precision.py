"""What `trainer.precision` really runs as, said before training and recorded in the config."""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig

log = logging.getLogger("genlab")

FP16_MIXED = ("16-mixed", "16")  # "16" is Lightning's older name of 16-mixed


def runs_on_cpu(accelerator: str | None) -> bool:
    """Whether Lightning will pick the CPU for `trainer.accelerator`."""
    if accelerator == "cpu":
        return True
    mps = torch.backends.mps.is_available()
    return accelerator in (None, "auto") and not torch.cuda.is_available() and not mps


def resolve_cpu_precision(cfg: DictConfig) -> None:
    """`16-mixed` on a CPU: Lightning silently runs bf16-mixed (fp16 autocast needs a GPU).

    Set `trainer.precision` to what runs, with a warning, so that the checkpoint's config,
    W&B and the CSV hyperparameters record bfloat16 rather than the float16 asked for.
    """
    trainer = cfg.trainer
    if str(trainer.get("precision")) not in FP16_MIXED or not runs_on_cpu(trainer.accelerator):
        return
    log.warning(
        "trainer.precision=%s runs as bf16-mixed on the CPU (float16 autocast needs a GPU); "
        "the run records bf16-mixed; set trainer.precision=bf16-mixed or 32-true to silence this",
        trainer.precision,
    )
    trainer.precision = "bf16-mixed"
