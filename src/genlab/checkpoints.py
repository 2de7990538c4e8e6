"""Write checkpoints atomically; read them back into models, with one clear error for a bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.plugins.io import TorchCheckpointIO

from genlab.config.instantiate import build
from genlab.errors import GenlabError, first_line
from genlab.models.base import GenerativeModule
from genlab.utils.files import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic wherever the run directory lives.

    Lightning writes into a temporary file in the system's temp directory and moves it
    into place; when that is another filesystem (a node's /tmp and a shared run
    directory) the move is a copy, and a crash during it truncates `last.ckpt`. This
    writes the temporary file beside the checkpoint and renames it (`write_atomically`).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            write_atomically(Path(path), lambda tmp: save_into_file(checkpoint, tmp))
        except OSError as err:  # name the checkpoint: a failed write() names no file
            raise OSError(err.errno, err.strerror, str(path)) from None


def save_into_file(checkpoint: dict[str, Any], path: Path) -> None:
    """`torch.save` through a Python file: a full disk is then an OSError (ENOSPC) rather
    than the zip writer's RuntimeError ("unexpected pos ...") that a path gives."""
    with open(path, "wb") as file:
        torch.save(checkpoint, file)


# Keys of a training checkpoint that belong to resuming the training, not to its weights.
TRAINING_STATE = (
    "optimizer_states", "lr_schedulers", "callbacks", "rng_states", "current_model_state",
)  # fmt: skip
# The key that marks a checkpoint as weights for sampling only; its value says which weights.
WEIGHTS_ONLY = "weights_only"


def weights_only_checkpoint(
    checkpoint: dict[str, Any], state_dict: dict[str, Any], holds: str
) -> dict[str, Any]:
    """`checkpoint` with `state_dict` as its weights and without its training state: a file
    that genlab-sample, genlab-eval and genlab-export take and genlab-train refuses, saying
    that it `holds` (e.g. "post-hoc EMA weights (sigma_rel 0.05)")."""
    kept = {key: value for key, value in checkpoint.items() if key not in TRAINING_STATE}
    return {**kept, "state_dict": state_dict, WEIGHTS_ONLY: holds}


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
        reason = first_line(err)
        raise GenlabError(
            f"checkpoint {path} cannot be read (truncated or not a checkpoint): {reason}"
        ) from None
    if not isinstance(checkpoint, dict) or "genlab_config" not in checkpoint:
        raise GenlabError(
            f"{path} is not a genlab checkpoint (it holds no run config); "
            "pass a .ckpt file written by genlab-train"
        )
    return checkpoint


def latest_last_checkpoint(runs_dir: Path, exclude: Path | None = None) -> Path:
    """The most recently written `checkpoints/last.ckpt` below `runs_dir` (runs and sweeps)."""
    candidates = [
        path
        for path in runs_dir.glob("**/checkpoints/last.ckpt")
        if exclude is None or exclude not in path.parents
    ]
    if not candidates:
        raise GenlabError(
            f"ckpt_path=last found no checkpoints/last.ckpt below {runs_dir}; "
            "pass a run directory or a .ckpt file instead"
        )
    return max(candidates, key=lambda path: path.stat().st_mtime)


def resume_path(ckpt_path: str | Path, runs_dir: Path, this_run: Path | None = None) -> Path:
    """The checkpoint a run resumes from: `last` (the latest run's last.ckpt below
    `runs_dir`, other than `this_run`'s), a run directory (its last.ckpt) or a .ckpt file.
    """
    if str(ckpt_path) == "last":
        return latest_last_checkpoint(runs_dir, exclude=this_run)
    path = Path(ckpt_path)
    return path / "checkpoints" / "last.ckpt" if path.is_dir() else path


def load_model(path: str | Path) -> tuple[GenerativeModule, DictConfig]:
    """Rebuild the model a checkpoint was trained with and load its weights, in eval mode."""
    checkpoint = read_checkpoint(path)
    config = OmegaConf.create(checkpoint["genlab_config"])
    model: GenerativeModule = build("model", config.model)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), config


def run_datamodule(run_cfg: DictConfig, data_dir: str | None = None) -> Any:
    """The datamodule a checkpoint's run trained on, reading from `data_dir` if the data moved."""
    if data_dir is not None:
        with open_dict(run_cfg):
            run_cfg.data.data_dir = data_dir
    return build("data", run_cfg.data)
