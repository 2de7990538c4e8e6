"""Preemption on SLURM: save the exact state, requeue the job, resume where it stopped.

SLURM warns a job with a signal before it preempts it or its time runs out: SIGUSR2 for
jobs of the submitit launchers (`submitit_slurm`, `slurm_ddp`; submitit's `--signal`),
SIGUSR1 for a plain `srun genlab-train ...` under Lightning's SLURM environment. Both
libraries act inside the signal handler, in the middle of a step: submitit requeues the
job at once, which then starts over from its original overrides, and Lightning saves
`hpc_ckpt_N.ckpt` mid-step. genlab takes the signal instead (`RequeueOnPreemption`) and
treats it like SIGTERM: the run stops after the current batch and `InterruptCheckpoint`
saves its exact state into `last.ckpt`. The entry point then (`requeued_when_preempted`)
marks the run `status: requeued` in its result.yaml, with the job's id, and requeues the
job the cluster's way: through submitit's own handler (it resubmits the launcher's job
unchanged, into the same job directory) or with `scontrol requeue`.

A preemption that SLURM announces with SIGTERM (PreemptMode=REQUEUE) saves the state the
same way, and SLURM requeues the job itself; the run records its job id beside
`status: interrupted`.

When the restarted job starts (`requeued_checkpoint`), it finds that record, in its own
directory (submitit) or in the run of the same SLURM job and step (a plain SLURM job gets
a new run directory), and resumes from that run's `last.ckpt`, continuing its W&B run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only

from genlab.utils.run_result import INTERRUPTED_EXIT_CODE, RESULT_FILE, read_result, write_result

log = logging.getLogger("genlab")

REQUEUED = "requeued"  # result.yaml status of a run whose job was requeued
INTERRUPTED = "interrupted"  # ... of a run stopped by SIGTERM or Ctrl+C, its state saved


class PendingRequeue:
    """A requeue signal arrived: what to call, once the state is saved, to requeue."""

    def __init__(self, signum: int, submitit_handler: Callable[..., Any] | None) -> None:
        self.signum = signum
        self.submitit_handler = submitit_handler

    def requeue(self) -> None:
        if self.submitit_handler is not None:  # pickles the resubmission, requeues, exits
            self.submitit_handler(self.signum, None)
        elif rank_zero_only.rank == 0:
            job = slurm_job_id()
            log.warning("requeueing SLURM job %s", job)
            subprocess.run(["scontrol", "requeue", job], check=False, timeout=60)


_pending: PendingRequeue | None = None


def under_submitit() -> bool:
    return "SUBMITIT_FOLDER" in os.environ


def slurm_job_id() -> str | None:
    """This job's id (`<array job>_<task>` for an array job), the same after a requeue."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    return os.environ.get("SLURM_JOB_ID")


def job_identity() -> str | None:
    """`<job id>` plus `.<step>` under srun: the same for a step of a requeued job as for
    that step before, different for two trainings that one batch script runs in turn."""
    job, step = slurm_job_id(), os.environ.get("SLURM_STEP_ID")
    return None if job is None else f"{job}.{step}" if step else job


def requeue_signal() -> int | None:
    """The signal with which the cluster announces a preemption, or None off a cluster."""
    if under_submitit():
        import submitit  # only under submitit

        return getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}")
    if SLURMEnvironment.detect():
        return signal.SIGUSR1  # SLURMEnvironment's requeue_signal
    return None


class RequeueOnPreemption(pl.Callback):
    """Turn the cluster's requeue signal into a save after this batch and a requeue.

    It takes the signal over when training starts (from submitit, or from Lightning's
    SLURM handler) and gives it back at teardown; before training there is nothing to save.
    """

    def __init__(self) -> None:
        self._signum: int | None = None
        self._previous: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._signum = requeue_signal()
        if self._signum is not None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self._signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        global _pending
        submitit_handler = self._previous if under_submitit() and callable(self._previous) else None
        _pending = PendingRequeue(signum, submitit_handler)
        log.warning("preemption signal %s: saving the state after this batch, then requeueing",
                    signal.Signals(signum).name)  # fmt: skip
        os.kill(os.getpid(), signal.SIGTERM)  # InterruptCheckpoint saves at the batch's end

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._signum is not None and threading.current_thread() is threading.main_thread():
            signal.signal(self._signum, self._previous or signal.SIG_DFL)
            self._signum = None


@contextmanager
def requeued_when_preempted(run_dir: Path) -> Iterator[None]:
    """Around the entry point: after an interrupted run saved its state and wrote its
    result.yaml, record its SLURM job (a job that SLURM itself requeues after a SIGTERM
    then resumes too) and, after the requeue signal, mark it requeued and requeue it."""
    global _pending
    try:
        yield
    except SystemExit as exit_:
        pending, _pending = _pending, None
        if exit_.code != INTERRUPTED_EXIT_CODE:
            raise
        if pending is None:
            if job_identity() is not None:
                mark(run_dir, job_id=job_identity())
            raise
        mark(run_dir, status=REQUEUED, job_id=job_identity())
        try:
            pending.requeue()
        except Exception as err:  # submitit declined, e.g. timed out too many times
            mark(run_dir, status=INTERRUPTED, error=f"not requeued: {err}".splitlines()[0])
            log.warning("the job was not requeued: %s", err)
        raise


def mark(run_dir: Path, **fields: Any) -> None:
    """Update the run's result.yaml (rank 0 writes it)."""
    if rank_zero_only.rank == 0:
        write_result(run_dir, {**(read_result(run_dir) or {}), **fields})


def restarted() -> bool:
    """Whether SLURM restarted this job (requeued by genlab, by SLURM itself, or by hand)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def of_this_job(result: dict[str, Any]) -> bool:
    """Whether a run's result.yaml records a run of this (restarted) SLURM job and step."""
    return restarted() and job_identity() is not None and result.get("job_id") == job_identity()


def continued_here(result: dict[str, Any]) -> bool:
    """Whether a run directory holding `result` is continued by this start: its job was
    requeued, or it was interrupted and this is its job restarted (under submitit, a job
    restarts in its own directory)."""
    status = result.get("status")
    return status == REQUEUED or (
        status == INTERRUPTED and (under_submitit() or of_this_job(result))
    )


def requeued_checkpoint(run_dir: Path, runs_dir: Path) -> Path | None:
    """The last.ckpt a restarted cluster job resumes from, or None for a new job.

    A job that restarts in its own directory (submitit's, or a fixed `hydra.run.dir`)
    resumes from it (`continued_here`). A plain SLURM job restarted by SLURM gets a new run
    directory: it resumes from the newest run of the same job and step that was requeued
    or interrupted.
    """
    if continued_here(read_result(run_dir) or {}):
        return checkpoint_if_saved(run_dir)
    if not restarted() or under_submitit():
        return None
    results = sorted(runs_dir.glob(f"**/{RESULT_FILE}"), key=os.path.getmtime, reverse=True)
    for result_file in results:
        result = read_result(result_file.parent) or {}
        if result.get("status") in (REQUEUED, INTERRUPTED) and of_this_job(result):
            return checkpoint_if_saved(result_file.parent)
    return None


def checkpoint_if_saved(run_dir: Path) -> Path | None:
    """A run preempted before its first save has nothing to resume: it starts over."""
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None
