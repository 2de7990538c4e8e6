"""Read torchvision's dataset classes from disk, with one clear error when files are missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genlab.data.errors import DatasetNotFoundError


def open_torchvision_dataset(
    factory: Callable[..., Any],
    root: str,
    folder: Path,
    expected_files: list[str],
    download: bool,
    key: str,
) -> tuple[Any, Any]:
    """Build the train and test datasets with `factory(root, train=..., download=...)`.

    Without `download`, the files are looked for first, so that a missing dataset
    reports the files expected and the folder searched instead of torchvision's
    generic "Dataset not found".
    """
    missing = [name for name in expected_files if not (folder / name).is_file()]
    if missing and not download:
        raise DatasetNotFoundError(
            f"{key} files not found: expected {', '.join(expected_files)} in {folder}; "
            f"place them there, point paths.data_dir at their parent, or set "
            f"data.download=true with network access"
        )
    try:
        return (
            factory(root, train=True, download=download),
            factory(root, train=False, download=download),
        )
    except (RuntimeError, OSError) as err:
        raise DatasetNotFoundError(
            f"{key} could not be read from {folder}: {str(err).splitlines()[0]}"
        ) from None
