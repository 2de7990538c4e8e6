"""Exact resume: a run killed at any point continues to the weights it would have reached.

Each test trains a reference run, then the same run interrupted twice, as a cluster
would: SIGTERM mid-epoch (preemption: the state at that batch is saved), and SIGKILL
(nothing is saved: the run resumes from the last checkpoint, losing the steps since).
With `trainer.deterministic=true` on the CPU the final weights must be identical.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab.callbacks import InterruptCheckpoint
from genlab.train import train
from genlab.utils.disk import DiskFullError
from genlab.utils.run_result import read_result
from tests.helpers.cli import BIN
from tests.helpers.runs import TINY_RUN, MakeConfig

pytestmark = pytest.mark.slow  # subprocesses killed and resumed

BATCHES_PER_EPOCH = 120
SETTINGS = [
    "trainer.deterministic=true", "trainer.max_epochs=3", "data.batch_size=16",
    f"+trainer.limit_train_batches={BATCHES_PER_EPOCH}", "+trainer.limit_val_batches=2",
    "metrics.n_samples=100", "callbacks.sample_grid.n=16", "callbacks.progress_bar=null",
    "callbacks.model_summary=null", "trainer.enable_model_summary=false",
]  # fmt: skip


def start(tmp_path: Path, name: str, *overrides: str) -> subprocess.Popen[str]:
    """Launch `genlab-train` into outputs/train/<name> below `tmp_path`."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_SERVICE", None)  # each run its own W&B service, as from a shell
    return subprocess.Popen(
        [str(BIN / "genlab-train"), *SETTINGS, *overrides, f"paths.cache_dir={tmp_path / 'cache'}",
         f"hydra.run.dir={tmp_path / 'outputs' / 'train' / name}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> None:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output


def last_checkpoint(tmp_path: Path, name: str) -> dict:
    return torch.load(tmp_path / "outputs" / "train" / name / "checkpoints" / "last.ckpt",
                      weights_only=True)  # fmt: skip


def wait_for_checkpoint_after(tmp_path: Path, name: str, step: int, proc: subprocess.Popen) -> int:
    """Block until the run's last.ckpt holds a global step beyond `step`; return that step."""
    path = tmp_path / "outputs" / "train" / name / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file():
            try:
                saved = torch.load(path, weights_only=True)["global_step"]
            except (RuntimeError, EOFError):  # caught between Lightning's write and rename
                saved = -1
            if saved > step:
                return saved
        time.sleep(0.1)
    raise AssertionError(f"{name} wrote no checkpoint after step {step}: {proc.communicate()[0]}")


def wandb_run_ids(tmp_path: Path, name: str) -> list[str]:
    runs = (tmp_path / "outputs" / "train" / name / "wandb").glob("offline-run-*")
    return [run.name.rsplit("-", 1)[1] for run in runs]


SCHEDULER = (
    "model.scheduler={_target_:torch.optim.lr_scheduler.ExponentialLR,_partial_:true,gamma:0.9}"
)


@pytest.mark.parametrize("model", ["gan", "vae"])
def test_a_run_killed_twice_and_resumed_ends_with_identical_weights(
    model: str, tmp_path: Path
) -> None:
    finish(start(tmp_path, "reference", f"model={model}", SCHEDULER))
    reference = last_checkpoint(tmp_path, "reference")
    cache_files = {path: path.stat().st_mtime for path in (tmp_path / "cache").rglob("*.pt")}
    assert cache_files  # the FID statistics of the real images, computed once

    # 1. SIGTERM part-way through the second epoch: the state at that batch is saved.
    first = start(tmp_path, "first", f"model={model}", SCHEDULER)
    epoch_end = wait_for_checkpoint_after(tmp_path, "first", -1, first)
    time.sleep(1.0)  # into the next epoch
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 143, output
    assert "resume with ckpt_path=" in " ".join(output.split())  # rich wraps long lines
    interrupted = last_checkpoint(tmp_path, "first")
    assert read_result(tmp_path / "outputs" / "train" / "first")["status"] == "interrupted"
    assert interrupted["global_step"] > epoch_end  # saved at the signal, not at the epoch's end
    assert interrupted["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"][
        "completed"
    ] not in (0, BATCHES_PER_EPOCH)  # mid-epoch

    # 2. Resume from the run directory, then SIGKILL it: nothing is saved at the kill.
    second = start(
        tmp_path, "second", f"model={model}", SCHEDULER, f"ckpt_path={tmp_path}/outputs/train/first"
    )
    wait_for_checkpoint_after(tmp_path, "second", interrupted["global_step"], second)
    time.sleep(1.0)
    second.kill()
    second.wait(timeout=60)

    # 3. `ckpt_path=last`: the newest last.ckpt of this task, the second run's.
    finish(start(tmp_path, "third", f"model={model}", SCHEDULER, "ckpt_path=last"))
    resumed = last_checkpoint(tmp_path, "third")
    assert read_result(tmp_path / "outputs" / "train" / "second") is None  # SIGKILL: nothing
    assert read_result(tmp_path / "outputs" / "train" / "third")["status"] == "completed"

    assert resumed["global_step"] == reference["global_step"]
    assert resumed["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    for ours, theirs in zip(
        resumed["optimizer_states"], reference["optimizer_states"], strict=True
    ):
        for slot, state in theirs["state"].items():
            assert all(torch.equal(ours["state"][slot][k], v) for k, v in state.items())
    assert resumed["lr_schedulers"] == reference["lr_schedulers"]
    # one W&B run, continued by every resumption; real-image statistics never recomputed
    assert wandb_run_ids(tmp_path, "first") == wandb_run_ids(tmp_path, "second")
    assert wandb_run_ids(tmp_path, "first") == wandb_run_ids(tmp_path, "third")
    assert {
        path: path.stat().st_mtime for path in (tmp_path / "cache").rglob("*.pt")
    } == cache_files


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up while the second epoch's checkpoint is written."""
    real_save = torch.save
    disk_full = False

    def save_until_the_disk_fills(obj, file, *args, **kwargs):
        if not disk_full:
            return real_save(obj, file, *args, **kwargs)
        file.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    def fill_disk_in_second_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        nonlocal disk_full
        disk_full = trainer.current_epoch == 1

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    monkeypatch.setattr(InterruptCheckpoint, "on_train_epoch_start", fill_disk_in_second_epoch,
                        raising=False)  # fmt: skip
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", "trainer.max_epochs=2"])
    with pytest.raises(DiskFullError, match=r"no space left on device while writing .*\.ckpt"):
        train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    kept = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert kept["epoch"] == 0 and kept["genlab_config"]  # the first epoch's, whole


def test_ctrl_c_saves_the_state_between_two_batches(tmp_path: Path) -> None:
    """The first Ctrl+C is handled like SIGTERM: the run stops after the current batch."""
    proc = start(tmp_path, "interrupted", "model=vae", "logger=csv")
    epoch_end = wait_for_checkpoint_after(tmp_path, "interrupted", -1, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    assert "saving the state after this batch" in " ".join(output.split())
    saved = last_checkpoint(tmp_path, "interrupted")
    assert saved["global_step"] > epoch_end
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress["ready"] == progress["completed"]  # no batch left half-done
    assert progress["completed"] not in (0, BATCHES_PER_EPOCH)
