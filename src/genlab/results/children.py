"""The processes genlab-results starts (a cell's training and evaluations), one at a time.

Ctrl+C or SIGTERM stops the whole command, not only the cell that runs: the child is sent the
same signal (genlab-train then saves its state into last.ckpt between two batches and exits),
is given STOP_GRACE_S to do so, and is killed with its process group after that, so no
training is left running behind the command. A child runs in its own session, so that a
terminal's Ctrl+C reaches it once, from genlab-results, and not also directly (a second
Ctrl+C tells genlab-train to stop at once, without saving).

Each cell is measured under a lock file of its own (`flock`, which the kernel releases when
the holder dies): a second genlab-results skips a cell that another one measures. The
children inherit the lock, so a training left running by a killed genlab-results still holds
it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

STOP_GRACE_S = 30.0  # how long a stopped child has to save its state and exit
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """SIGINT or SIGTERM reached genlab-results: the command stops, exit status 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.killed = False  # the child did not exit within STOP_GRACE_S

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class CellBusy(Exception):
    """Another genlab-results holds the cell's lock: it measures that cell now."""


class Children:
    """The child that runs now, and what a stop signal does to it."""

    def __init__(self) -> None:
        self.running: subprocess.Popen | None = None
        self.starting = False  # a stop signal waits until the child that starts is known
        self.signum: int | None = None  # the first stop signal received
        self.inherited: tuple[int, ...] = ()  # the held cell locks (file descriptors)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The first signal stops the command (`Stopped`); a second one is the child's own:
        genlab-train stops at once on a second Ctrl+C."""
        if self.signum is None:
            self.signum = signum
            if not self.starting:
                raise Stopped(signum)
        elif self.running is not None:
            self.running.send_signal(signum)

    @contextmanager
    def stopping_on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM raise `Stopped` (after stopping the child) while inside; the
        previous handlers come back afterwards."""
        self.signum = None
        previous = {signum: signal.signal(signum, self.on_signal) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def run(self, command: list[str], out: IO[str]) -> int:
        """Run `command` with its output into `out`; its exit status."""
        self.starting = True
        try:
            self.running = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, pass_fds=self.inherited,
            )  # fmt: skip
            self.starting = False
            if self.signum is not None:  # it arrived while the child started
                raise Stopped(self.signum)
            return self.running.wait()
        except Stopped as stop:
            if self.running is not None:
                stop.killed = self.stop(self.running, stop.signum)
            raise
        finally:
            self.starting, self.running = False, None

    @staticmethod
    def stop(child: subprocess.Popen, signum: int) -> bool:
        """Send `signum` to the child, wait for it to save and exit; True when it had to be
        killed (with the processes it started: its data loaders)."""
        child.send_signal(signum)
        try:
            child.wait(timeout=STOP_GRACE_S)
            return False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its own session: its group is its own
            child.wait()
            return True

    @contextmanager
    def holding(self, lock: Path, label: str) -> Iterator[None]:
        """Hold `lock` (it names this process) while measuring; `CellBusy` when another
        genlab-results, or a child it left running, holds it."""
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a+") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "unknown"
                raise CellBusy(
                    f"{label}: being measured by another genlab-results (pid {holder}; "
                    f"lock {lock}), skipped"
                ) from None
            file.truncate(0)
            file.write(f"{os.getpid()}\n")
            file.flush()
            self.inherited = (*self.inherited, file.fileno())
            try:
                yield
            finally:
                self.inherited = tuple(fd for fd in self.inherited if fd != file.fileno())


CHILDREN = Children()  # genlab-results runs one child at a time
