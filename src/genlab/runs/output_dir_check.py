"""A Hydra callback that checks the run's output directory before anything is trained.

An unwritable directory or a full disk would otherwise surface at the first
checkpoint, after an epoch of training (or after hours, at the first save of a
long epoch). Hydra calls this before it creates the run or sweep directory.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genlab.errors import GenlabError, user_errors_reported


def output_dir_problem(directory: Path, min_free_mb: float) -> str | None:
    """Why runs cannot write into `directory` (created if missing), or None if they can."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        return f"cannot write to the output directory {directory} ({err.strerror or err})"
    free_mb = shutil.disk_usage(directory).free / 2**20
    if free_mb < min_free_mb:
        return (
            f"only {free_mb:.0f} MB free on the disk of the output directory {directory}, "
            f"below the {min_free_mb:.0f} MB a run needs for its checkpoints and samples"
        )
    return None


class OutputDirCheck(Callback):
    """Exit with one `error:` line when the run (or sweep) directory is unwritable or its
    disk has less than `min_free_mb` free."""

    def __init__(self, min_free_mb: float = 500) -> None:
        self.min_free_mb = min_free_mb

    def _check(self, directory: str) -> None:
        problem = output_dir_problem(Path(directory), self.min_free_mb)
        if problem is not None:
            with user_errors_reported():  # the same `error:` line and exit status as elsewhere
                raise GenlabError(
                    f"{problem}; set paths.log_dir (or GENLAB_LOG_DIR) to another directory"
                )

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # the run dir reads ${hydra:runtime.cwd}
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        self._check(config.hydra.sweep.dir)
