"""genlab checkpoints of untrained models, as `load_model` reads them, in milliseconds."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from genlab.config.instantiate import build
from tests.helpers.runs import compose_config


def write_checkpoint(folder: Path, overrides: list[str], seed: int = 0) -> Path:
    """`<folder>/checkpoints/last.ckpt` holding the run config of `overrides` (train.yaml) and
    freshly initialised weights (seeded); the layout genlab-train writes.

    A weight matrix initialised to zero (the UNet's output layer) is drawn small and random
    instead, so that every model's samples depend on its noise and weights."""
    cfg = compose_config("train", ["logger=csv", *overrides], folder)
    torch.manual_seed(seed)
    model = build("model", cfg.model)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() > 1 and not weight.any():
                weight.normal_(0.0, 0.05)
    path = folder / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    torch.save({"genlab_config": config, "state_dict": model.state_dict(), "epoch": 0,
                "global_step": 0, "genlab_version": "test"}, path)  # fmt: skip
    return path
