"""Preempted and killed runs lose nothing: on SLURM the requeue signal saves the exact
state and the requeued job resumes from its own last.ckpt in the same W&B run (through
submitit's launcher and through Lightning's SLURM environment, both simulated here); a
run killed with SIGKILL at random points resumes to the weights of an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from genlab.runs.result import read_result
from tests.helpers.cli import BIN, run

SETTINGS = [
    "model=vae", "trainer.deterministic=true", "trainer.max_epochs=2", "data.batch_size=16",
    "+trainer.limit_train_batches=60", "+trainer.limit_val_batches=2", "metrics=none",
    "callbacks.sample_grid.n=16", "callbacks.progress_bar=null", "callbacks.model_summary=null",
    "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
]  # fmt: skip


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_SERVICE", None)  # each run its own W&B service, as from a shell
    return env


def start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    flags = [arg for arg in args if arg.startswith("-")]  # -m: before the overrides
    overrides = [arg for arg in args if not arg.startswith("-")]
    return subprocess.Popen(
        [str(BIN / "genlab-train"), *flags, *SETTINGS, *overrides,
         f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, env=environment(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def wait_for_a_checkpoint(run_dir: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "last.ckpt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)


def assert_same_weights(resumed: dict, reference: dict) -> None:
    assert resumed["global_step"] == reference["global_step"]
    assert resumed["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key


def wandb_run_ids(run_dir: Path) -> list[str]:
    """The ids of the offline W&B runs in a run directory (one folder per process)."""
    return [run.name.rsplit("-", 1)[1] for run in (run_dir / "wandb").glob("offline-run-*")]


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run's final checkpoint."""
    tmp_path = tmp_path_factory.mktemp("reference")
    proc = start(tmp_path, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}")
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    return checkpoint(tmp_path / "run")


def submitit_task(sweep_dir: Path) -> int:
    """The pid of the process in which submitit's local executor runs the sweep's job."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode().split("\0")
            except (OSError, ValueError):
                continue
            if "submitit.core._submit" in cmdline and str(sweep_dir) in " ".join(cmdline):
                return int(proc.name)
        time.sleep(0.2)
    raise AssertionError(f"no submitit task for {sweep_dir}")


@pytest.mark.slow
def test_submitit_requeue_resumes_the_job_from_its_own_last_ckpt(
    tmp_path: Path, reference: dict
) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = start(tmp_path, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=30",
                 f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    job_dir = sweep_dir / "0"
    wait_for_a_checkpoint(job_dir, proc)  # the first save: training is under way
    os.kill(submitit_task(sweep_dir), signal.SIGUSR2)  # submitit's preemption signal
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    (log,) = (sweep_dir / ".submitit").glob("*/*_0_log.out")
    assert "Requeued job" in log.read_text()  # submitit's own requeue protocol ran
    assert_same_weights(checkpoint(job_dir), reference)
    ids = wandb_run_ids(job_dir)
    assert len(ids) == 2 and len(set(ids)) == 1  # one W&B run, continued by the requeued job
    assert read_result(job_dir)["status"] == "completed"
    steps = [line.split(",")[-1] for line in (job_dir / "csv" / "metrics.csv").read_text().split()]
    assert len(steps) > 60  # the rows logged before the preemption are kept
    assert not temp_files(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "requeued_by"),
    [
        ("SIGUSR1", "genlab"),  # Lightning's SLURM requeue signal: genlab requeues
        ("SIGTERM", "SLURM"),  # preemption with PreemptMode=REQUEUE: SLURM requeues
    ],
)
def test_lightning_slurm_requeue_resumes_the_job_from_its_last_ckpt(
    tmp_path: Path, reference: dict, sig: str, requeued_by: str
) -> None:
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol_calls"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "genlab",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
             "SLURM_NODELIST": "localhost"}  # fmt: skip
    slurm["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"  # the fake scontrol first
    runs = tmp_path / "outputs" / "train"  # paths.log_dir/task_name, where runs are found
    first = start(tmp_path, f"hydra.run.dir={runs / 'first'}", **slurm)
    wait_for_a_checkpoint(runs / "first", first)
    first.send_signal(getattr(signal, sig))
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 143, output
    result = read_result(runs / "first")
    assert result["job_id"] == "4242"
    if requeued_by == "genlab":
        assert calls.read_text() == "requeue 4242\n"
        assert result["status"] == "requeued"
    else:
        assert not calls.exists() and result["status"] == "interrupted"
    saved = checkpoint(runs / "first")
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress["ready"] == progress["completed"]  # saved between two batches

    # SLURM starts the job's script again: a new run directory, the same job id
    second = start(tmp_path, f"hydra.run.dir={runs / 'second'}", SLURM_RESTART_COUNT="1",
                   **slurm)  # fmt: skip
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert_same_weights(checkpoint(runs / "second"), reference)
    ids = wandb_run_ids(runs / "first")
    assert len(ids) == 1 and wandb_run_ids(runs / "second") == ids  # it resumed, in that run


def trained_to_the_end(run_dir: Path, reference: dict) -> bool:
    """Whether the run's last.ckpt holds the final step: a later start has nothing to train."""
    return checkpoint(run_dir)["global_step"] == reference["global_step"]


def kill_during_a_write(run_dir: Path, proc: subprocess.Popen[str]) -> None:
    """SIGKILL the run as soon as it is writing a checkpoint's temporary file."""
    deadline = time.monotonic() + 120
    while not list((run_dir / "checkpoints").glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()


@pytest.mark.slow
def test_sigkill_at_random_points_resumes_to_the_same_weights(
    tmp_path: Path, reference: dict
) -> None:
    # last.ckpt after every batch (0 minutes): kills land before, during and after writes;
    # the first kill is aimed at a write, until one leaves its temporary file behind.
    delays, previous, leftovers, attempt = random.Random(0), None, 0, 0
    while not (previous and trained_to_the_end(previous, reference)) and (
        attempt < 3 or (not leftovers and attempt < 6)
    ):
        run_dir = tmp_path / f"attempt{attempt}"
        resume = [f"ckpt_path={previous}"] if previous else []
        proc = start(tmp_path, "logger=csv", "checkpoint_every_minutes=0",
                     f"hydra.run.dir={run_dir}", *resume)  # fmt: skip
        wait_for_a_checkpoint(run_dir, proc)
        if leftovers:
            time.sleep(delays.uniform(0.0, 3.0))
            proc.kill()
        else:
            kill_during_a_write(run_dir, proc)
        proc.wait(timeout=60)
        leftovers += len(temp_files(run_dir))
        previous, attempt = run_dir, attempt + 1
    assert leftovers  # a kill landed in the middle of a write
    final = previous
    if not trained_to_the_end(previous, reference):  # else a kill came after the last save
        final = tmp_path / "final"
        proc = start(tmp_path, "logger=csv", f"hydra.run.dir={final}", f"ckpt_path={previous}")
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output
    assert_same_weights(checkpoint(final), reference)
    stale = [f for f in temp_files(tmp_path) if f.parent.parent != final]
    assert not stale  # each start removed what the kill before it left


@pytest.mark.slow
def test_a_multirun_of_ddp_jobs_gives_one_run_dir_and_one_wandb_run_per_job(
    tmp_path: Path,
) -> None:
    tiny = [o for o in SETTINGS if o.split("=")[0] not in
            ("model", "trainer.max_epochs", "+trainer.limit_train_batches")]  # fmt: skip
    proc = run(
        [str(BIN / "genlab-train"), "-m", "trainer=ddp_sim", "model=gan,vae", *tiny,
         "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
         f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = sorted(p.parent for p in (tmp_path / "out").rglob(".hydra"))
    (sweep_dir,) = {run.parent for run in runs}
    assert [run.name for run in runs] == ["0", "1"]  # no directory of a rank's own
    for job in runs:
        assert len(wandb_run_ids(job)) == 1
        assert read_result(job)["status"] == "completed"
    assert (sweep_dir / "summary.csv").read_text().count("completed") == 2
