"""Where genlab-sample and genlab-eval write, checked before the work that fills it."""

from __future__ import annotations

from pathlib import Path

from genlab.errors import ConfigError


def writable_directory(key: str, path: Path) -> Path:
    """Create the directory `path` (with its parents), or raise one ConfigError line."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={path} is a file, not a directory; name a new or existing folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"{key}={path} cannot be created ({err.strerror or err}); "
            "name a folder you can write to"
        ) from None
    return path


def writable_file(key: str, path: Path) -> Path:
    """Check that the file `path` can be written (its folder is created), or raise one line."""
    if path.is_dir():
        raise ConfigError(f"{key}={path} is a directory; name a file, e.g. {path / 'metrics.json'}")
    try:
        writable_directory(key, path.parent)
    except ConfigError as err:
        raise ConfigError(f"{key}={path}: its folder cannot be used: {err}") from None
    return path
