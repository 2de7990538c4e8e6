"""Real-image features computed once and kept on disk, shared by every run and sweep job.

The file name is a hash of everything that determines the features: dataset,
split, image count, a checksum of the images themselves (a different split seed or
image folder with the same name and count is different data), extractor and the
extractor's weights checksum. A changed key is a different file, so a stale file is
never reused; the key is also stored inside the file and checked on reading.

Only finite features are stored, and a file holding a NaN or an infinity is discarded
on reading: one poisoned file would otherwise break every later evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.utils.files import write_atomically

log = logging.getLogger(__name__)


def cache_key(
    dataset: str,
    split: str,
    n_images: int,
    images_sha256: str,
    extractor: str,
    weights_sha256: str,
) -> dict:
    """The identity of a set of real features."""
    return {
        "dataset": dataset,
        "split": split,
        "n_images": n_images,
        "images_sha256": images_sha256,
        "extractor": extractor,
        "weights_sha256": weights_sha256,
    }


def cache_path(cache_dir: str | Path, key: dict) -> Path:
    """`<cache_dir>/real_features/<dataset>-<split>-<extractor>-<hash>.pt`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{key['dataset']}-{key['split']}-{key['extractor']}-{digest}.pt"
    return Path(cache_dir) / "real_features" / name


def _read(path: Path, key: dict) -> Tensor | None:
    """The cached features, or None (with a warning) when the file is unusable."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored["key"] != key or stored["features"].shape[0] != key["n_images"]:
            raise ValueError("its key does not match")
        if not bool(torch.isfinite(stored["features"]).all()):
            raise ValueError("it holds NaN or infinite features")
        return stored["features"]
    except Exception as err:  # a damaged file may raise anything while unpickling
        log.warning("ignoring unreadable feature cache %s (%s); recomputing", path, err)
        return None


def cached_features(cache_dir: str | Path, key: dict, compute: Callable[[], Tensor]) -> Tensor:
    """Features for `key`: from the cache when present and intact, else computed and stored."""
    path = cache_path(cache_dir, key)
    if path.is_file():
        features = _read(path, key)
        if features is not None:
            log.info("real-image features from cache %s", path)
            return features
    features = compute().float().cpu()
    if not bool(torch.isfinite(features).all()):
        raise GenlabError(
            f"the {key['extractor']} features of the real {key['dataset']} {key['split']} images "
            "hold NaN or infinite values, so no FID can be computed (nothing was cached); "
            "check the images and the extractor's weights"
        )
    write_atomically(path, lambda tmp: torch.save({"key": key, "features": features}, tmp))
    log.info("real-image features computed and cached in %s", path)
    return features
