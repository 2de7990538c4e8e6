"""Save the run's state when it is interrupted, so that a preempted job loses nothing.

SLURM and cloud preemption send SIGTERM; Lightning turns it into a SIGTERMException at
the next batch boundary and calls every callback's `on_exception`. Ctrl+C (SIGINT) is
routed the same way: the first one is re-sent as SIGTERM, so the state is saved between
two batches rather than in the middle of an optimiser step; a second Ctrl+C stops at
once. Lightning's own OnExceptionCheckpoint saves on *any* exception (a NaN loss or a
crash would overwrite a good state) and deletes its file at teardown, so genlab saves
only on interrupts, into `last.ckpt`, which `ckpt_path=<run dir>` resumes from.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger("genlab")


class InterruptCheckpoint(pl.Callback):
    """On SIGTERM or Ctrl+C, write `<dirpath>/<filename>.ckpt` (atomically, via Lightning)."""

    def __init__(self, dirpath: str | Path, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._previous_sigint_handler: signal.Handlers | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint_handler = signal.signal(signal.SIGINT, self._on_ctrl_c)

    def _on_ctrl_c(self, signum: int, frame: FrameType | None) -> None:
        self._restore_sigint_handler()  # a second Ctrl+C interrupts immediately
        log.warning("Ctrl+C: saving the state after this batch (press Ctrl+C again to stop now)")
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint_handler(self) -> None:
        if self._previous_sigint_handler is not None:
            signal.signal(signal.SIGINT, self._previous_sigint_handler)
            self._previous_sigint_handler = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_sigint_handler()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            return
        trainer.save_checkpoint(self.path)
        log.warning("interrupted (%s) at step %d; resume with ckpt_path=%s",
                    type(exception).__name__, trainer.global_step, self.path)  # fmt: skip
