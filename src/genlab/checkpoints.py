"""Read genlab checkpoints back into models, with one clear error for a bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from genlab.models.base import GenerativeModule
from genlab.utils.errors import GenlabError
from genlab.utils.instantiate import build


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU; a missing, truncated or foreign file is a GenlabError."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(
            f"checkpoint {path} does not exist; pass ckpt_path=<run dir>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise GenlabError(
            f"checkpoint {path} cannot be read (truncated or not a checkpoint): {reason}"
        ) from None
    if not isinstance(checkpoint, dict) or "genlab_config" not in checkpoint:
        raise GenlabError(
            f"{path} is not a genlab checkpoint (it holds no run config); "
            "pass a .ckpt file written by genlab-train"
        )
    return checkpoint


def resume_path(ckpt_path: str | Path) -> Path:
    """The checkpoint to resume from: a .ckpt file, or a run directory (its last.ckpt).

    The file is read once here, so a missing, truncated or foreign file fails in one
    line before any training starts, not inside Lightning after the setup.
    """
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    read_checkpoint(path)
    return path


def load_model(path: str | Path) -> tuple[GenerativeModule, DictConfig]:
    """Rebuild the model a checkpoint was trained with and load its weights, in eval mode."""
    checkpoint = read_checkpoint(path)
    config = OmegaConf.create(checkpoint["genlab_config"])
    model: GenerativeModule = build("model", config.model)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), config
