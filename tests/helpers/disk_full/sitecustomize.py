"""Loaded at interpreter start when this folder is on PYTHONPATH: the disk of the run
fills up at the N-th write of a `last.ckpt` (N from GENLAB_TEST_DISK_FULL_AT_WRITE).

The write stops half-way with the error a full disk gives a Python file (ENOSPC), as
`genlab.checkpoints.AtomicCheckpointIO` writes through one.
"""

import errno
import os

import torch

_real_save = torch.save
_full_at = int(os.environ.get("GENLAB_TEST_DISK_FULL_AT_WRITE", "0"))
_writes = 0


def _save_until_the_disk_fills(obj, f, *args, **kwargs):
    global _writes
    name = os.path.basename(str(getattr(f, "name", f)))
    if name.startswith(".last.ckpt."):
        _writes += 1
        if _writes == _full_at:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _real_save(obj, f, *args, **kwargs)


torch.save = _save_until_the_disk_fills
