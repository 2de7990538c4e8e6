"""A Hydra callback that keeps a new run out of the directory of an existing one.

`hydra.run.dir=<a run's directory>` would overwrite that run's config.yaml, result.yaml,
metrics.csv and checkpoints. Only `genlab-train` may start there, and only to continue
that run: `ckpt_path` names it (the directory or a checkpoint in it), or it is that run's
cluster job, restarted (genlab.requeue). Likewise `hydra.sweep.dir` may not name an earlier sweep.
Hydra calls this before it writes anything into the directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genlab.requeue import continued_here
from genlab.utils.errors import GenlabError, user_errors_reported
from genlab.utils.run_result import RESULT_FILE, read_result
from genlab.utils.sweep_summary import SUMMARY_FILE

# What a run leaves in its directory.
RUN_FILES = (".hydra/config.yaml", RESULT_FILE, "checkpoints", "csv/metrics.csv")


def holds_a_run(directory: Path) -> bool:
    return any((directory / name).exists() for name in RUN_FILES)


def continues_the_run(directory: Path, ckpt_path: str | None) -> bool:
    """Whether this start resumes the run in `directory`, in place."""
    if ckpt_path and ckpt_path != "last":
        resumed = Path(ckpt_path).resolve()
        if resumed == directory.resolve() or directory.resolve() in resumed.parents:
            return True
    return continued_here(read_result(directory) or {})


class ExistingRunCheck(Callback):
    """Exit with one `error:` line when the run or sweep directory holds an earlier run."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("LOCAL_RANK", "0") != "0":  # DDP ranks 1..N-1 share rank 0's directory
            return
        HydraConfig.instance().set_config(config)  # the run dir reads ${hydra:runtime.cwd}
        run_dir = Path(config.hydra.run.dir)
        if not holds_a_run(run_dir):
            return
        training = config.hydra.job.config_name == "train"  # genlab-eval, -sample never continue
        if training and continues_the_run(run_dir, config.get("ckpt_path")):
            return
        self._refuse(
            f"hydra.run.dir={run_dir} already holds a run, whose config.yaml, result.yaml, "
            "metrics.csv and checkpoints a new run would overwrite; choose another directory"
            + (f", or continue that run with ckpt_path={run_dir}" if training else "")
        )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        if (sweep_dir / SUMMARY_FILE).exists() or any(sweep_dir.glob("*/.hydra/config.yaml")):
            self._refuse(
                f"hydra.sweep.dir={sweep_dir} already holds a sweep, whose jobs a new sweep "
                "would overwrite; choose another directory"
            )

    @staticmethod
    def _refuse(message: str) -> None:
        with user_errors_reported():  # the same `error:` line and exit status as elsewhere
            raise GenlabError(message)
