"""Where genlab's Hydra configs live, so that the entry points work from any directory."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """The `conf/` directory: inside the package for a wheel, the repository's otherwise."""
    for candidate in (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"genlab's conf/ directory was not found beside {_PACKAGE_DIR}")


def group_options(group: str) -> list[str]:
    """The options of a config group (`model`: gan, vae, flow, ...), sorted by name."""
    return sorted(path.stem for path in (config_dir() / group).glob("*.yaml"))
