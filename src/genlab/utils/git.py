"""Which code produced a number: the git commit of a checkout, for model cards and results."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(folder: Path, *args: str) -> str | None:
    """`git -C folder <args>`'s output, or None outside a git checkout (or without git)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip()


def git_commit(folder: Path) -> str | None:
    """The git commit of the code in `folder`, or None outside a git checkout."""
    return git(folder, "rev-parse", "HEAD") or None


def has_uncommitted_changes(folder: Path, *paths: Path) -> bool | None:
    """Whether tracked files in `paths` (all of the checkout when none) differ from the
    commit; None outside a git checkout."""
    pathspecs = [str(path.resolve()) for path in paths]
    status = git(folder, "status", "--porcelain", "--untracked-files=no", "--", *pathspecs)
    return None if status is None else bool(status)
