"""Every use of another library's private API, each pinned by a test (tests/test_compat.py
fails on the upgrade that removes one, before a run does).

- Lightning's `_LoggerConnector.should_update_logs`: whether this step's logged scalars
  are written (every `log_every_n_steps`); models skip `self.log` on other steps.
- Lightning's `_TrainingEpochLoop._batches_that_stepped`: the step stamped on logged
  scalars (batches; a GAN's `global_step` counts two optimizer steps per batch), so
  images sit at the same x-position as the losses.
  A checkpoint stores the same counter under `loops.fit_loop."epoch_loop.state_dict"`.
- TensorBoard's `SummaryWriter._get_file_writer()`: the writer Lightning writes with,
  for the HPARAMS record that Lightning writes only beside a placeholder metric.
- OmegaConf's `Container._get_node()`: a config child without resolving it, so that the
  allow-list check reads every `_target_` without failing on unrelated interpolations.
- Lightning's `_hydra_subprocess_cmd` (pytorch_lightning.strategies.launchers.
  subprocess_script): the command that starts DDP ranks 1..N-1 of a Hydra app. Lightning
  re-runs the whole command line, which in a multirun (`-m`) starts the entire sweep
  again in every rank; genlab starts them with the job's own overrides, in the job's
  directory (tests/test_preemption.py, the 2-job multirun on ddp_sim).
- Lightning's `WandbLogger._wandb_init`: the arguments it passes to `wandb.init`, among
  them `anonymous=None`, which wandb ignores and warns about on every run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch.distributed
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_original_cwd
from omegaconf import Container
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.strategies.launchers import subprocess_script

_lightning_hydra_subprocess_cmd = subprocess_script._hydra_subprocess_cmd
# What Lightning's launcher puts into os.environ for the ranks of one DDP job.
DDP_LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def hydra_job_subprocess_cmd(local_rank: int) -> tuple[Sequence[str], str]:
    """The command for DDP rank `local_rank` of the current Hydra job (see the module)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return _lightning_hydra_subprocess_cmd(local_rank)
    command = [  # genlab-train's module, also where a launcher (submitit) runs the job
        sys.executable, "-m", "genlab.train", f"--config-name={hydra_cfg.job.config_name}",
        *hydra_cfg.overrides.task, f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',
        f"hydra.job.name={hydra_cfg.job.name}_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]  # fmt: skip
    return command, get_original_cwd()


def start_ddp_ranks_as_the_job() -> None:
    subprocess_script._hydra_subprocess_cmd = hydra_job_subprocess_cmd


def end_ddp_job() -> None:
    """After a multirun job trained with DDP in this process, close its process group and
    forget its launch variables, so that the next job sets up its own ranks."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name in DDP_LAUNCH_VARIABLES:
            os.environ.pop(name, None)


def lightning_writes_logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning writes the scalars logged at this training step."""
    return trainer._logger_connector.should_update_logs


def batches_that_stepped(trainer: pl.Trainer) -> int:
    """The training batches so far: the step Lightning stamps on logged scalars."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def checkpoint_batches_that_stepped(checkpoint: dict[str, Any]) -> int:
    """`batches_that_stepped` as a Lightning checkpoint stores it."""
    return checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"]


def checkpoint_epochs_trained(checkpoint: dict[str, Any]) -> int:
    """The epochs a Lightning checkpoint has trained to their end (its `epoch` is the index
    of the epoch it was saved in: one less after a finished run)."""
    return checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]


def tensorboard_file_writer(summary_writer: Any) -> Any:
    """The event-file writer behind a `torch.utils.tensorboard.SummaryWriter`."""
    return summary_writer._get_file_writer()


def config_child(node: Container, key: str | int) -> Any:
    """The child node `key` of a DictConfig or ListConfig, interpolations unresolved."""
    return node._get_node(key)


class QuietWandbLogger(WandbLogger):
    """Lightning's W&B logger, less the `anonymous=None` it passes to `wandb.init` (a setting
    wandb no longer has: it warns about it in every run's console)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
