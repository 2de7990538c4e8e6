"""The console scripts run as a user runs them: subprocesses with offline W&B."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.runs import TINY_RUN

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_SERVICE", None)  # each run its own W&B service, as from a shell
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def sweep(tmp_path: Path, *overrides: str, check: bool = True):
    """Run `genlab-train -m` with tiny jobs; return (the one sweep directory, the process)."""
    proc = run(
        [str(BIN / "genlab-train"), "-m", *TINY_RUN, *overrides,
         f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, check=check,
    )  # fmt: skip
    (sweep_dir,) = (tmp_path / "out" / "train" / "multirun").glob("*/*")
    return sweep_dir, proc


def summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv") as f:
        return list(csv.DictReader(f))
