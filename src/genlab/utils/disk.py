"""A full disk while training: one line that says what stopped and what is kept.

Any writer can meet it first (a checkpoint, the CSV log, a sample grid, W&B), and
Lightning's clean-up after the first failure often meets it again; each of those would
print its own traceback. Checkpoints are written atomically, so the last complete one
is still there and loads.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genlab.utils.errors import GenlabError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(GenlabError):
    """The disk of the run directory (or the cache) filled up during training."""


@contextmanager
def disk_full_reported(run_dir: Path) -> Iterator[None]:
    """Turn an ENOSPC/EDQUOT OSError raised in the block into a DiskFullError."""
    try:
        yield
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        last = run_dir / "checkpoints" / "last.ckpt"
        kept = f"{last} is kept" if last.is_file() else "no checkpoint was saved before it"
        raise DiskFullError(
            f"no space left on device while writing {err.filename or run_dir}; {kept}: "
            f"free disk space, then resume with ckpt_path={run_dir}"
        ) from None
