"""Writing files so that a crash or a concurrent reader never sees half of one."""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("genlab")

TEMP_SUFFIX = ".tmp"
# A temporary file whose writer cannot be checked (another machine, or no writer named)
# is stale once it is this old: no genlab write takes an hour.
FOREIGN_TEMP_MAX_AGE_S = 3600


def writer_tag() -> str:
    """`<host>~<pid>`: which process writes a temporary file, so that a later start can
    tell a dead writer's leftover from a write in progress."""
    return f"{socket.gethostname()}~{os.getpid()}"


@functools.cache
def process_umask() -> int:
    """The process's umask: the permissions a file that open() creates would lack. Read
    once, by setting it and setting it back, before any thread of this process writes."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` on a temporary file beside `path`, then rename it to `path`.

    The rename is atomic on one filesystem: readers see the old file or the new one,
    and a failed write leaves the old file in place and no temporary file behind. The
    data reaches the disk (fsync) before the rename, so a power cut cannot leave the
    new name on an empty file either. A process killed mid-write leaves its temporary
    file `.<name>.<host>~<pid>.<random>.tmp`, which `remove_stale_temp_files` removes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{writer_tag()}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=TEMP_SUFFIX)
    os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp's 0600 would hide it from collaborators
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def writer_alive(tmp: Path, age_s: float) -> bool:
    """Whether the process that a temporary file's name tags may still be writing it."""
    mine = re.search(rf"\.{re.escape(socket.gethostname())}~(\d+)\.", tmp.name)
    if mine is None:  # written on another machine (or untagged): judged by its age
        return age_s < FOREIGN_TEMP_MAX_AGE_S
    try:
        os.kill(int(mine.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Remove the temporary files (below `directory`) that killed writers left behind.

    A write in progress (its process alive) is left alone, so runs that share a
    directory, such as the feature cache, never break each other's writes.
    """
    removed = []
    for tmp in sorted(directory.rglob(f".*{TEMP_SUFFIX}")) if directory.is_dir() else []:
        try:
            age_s = time.time() - tmp.stat().st_mtime
        except FileNotFoundError:  # its writer finished meanwhile
            continue
        if not writer_alive(tmp, age_s):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) of interrupted writes below %s", len(removed),
                 directory)  # fmt: skip
    return removed
