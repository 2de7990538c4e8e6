"""Save the run's state when it is interrupted, so that a preempted job loses nothing.

SLURM and cloud preemption send SIGTERM; Lightning turns it into a SIGTERMException at
the next batch boundary, and Ctrl+C into a KeyboardInterrupt, and calls every
callback's `on_exception`. Lightning's own OnExceptionCheckpoint saves on *any*
exception (a NaN loss or a crash would overwrite a good state) and deletes its file at
teardown, so genlab saves only on interrupts, into `last.ckpt`, which
`ckpt_path=<run dir>` resumes from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger("genlab")


class InterruptCheckpoint(pl.Callback):
    """On SIGTERM or Ctrl+C, write `<dirpath>/<filename>.ckpt` (atomically, via Lightning)."""

    def __init__(self, dirpath: str | Path, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            return
        trainer.save_checkpoint(self.path)
        log.warning("interrupted (%s) at step %d; resume with ckpt_path=%s",
                    type(exception).__name__, trainer.global_step, self.path)  # fmt: skip
