"""Every use of another library's private API, each pinned by a test.

- Lightning's `_hydra_subprocess_cmd` (pytorch_lightning.strategies.launchers.
  subprocess_script): the command that starts DDP ranks 1..N-1 of a Hydra app. Lightning
  re-runs the whole command line, which in a multirun (`-m`) starts the entire sweep
  again in every rank; genlab starts them with the job's own overrides, in the job's
  directory (tests/test_preemption.py, the 2-job multirun on ddp_sim).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch.distributed
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_original_cwd
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
