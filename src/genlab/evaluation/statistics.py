"""Statistics files: the moments of a feature set in pytorch-fid's `.npz` layout.

`mu` (D,) and `sigma` (D, D) are what pytorch-fid's `save_fid_stats` writes and its
`calculate_frechet_distance` reads (OpenAI's ADM reference batches hold them too).
genlab adds what makes a file safe to compare with: the extractor's name and weights
checksum, the number of images, their (C, H, W) shape and where they came from. A file
made by another extractor is refused: its FID would be a number with no meaning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.evaluation.image_files import load_arrays
from genlab.metrics.extractors import FeatureExtractor
from genlab.metrics.moments import Moments
from genlab.utils.files import write_atomically

MOMENT_KEYS = ("mu", "sigma")


def is_statistics_file(path: Path) -> bool:
    """Whether `path` is an `.npz` that holds `mu` and `sigma`."""
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as file:
            return all(key in file.files for key in MOMENT_KEYS)
    except (OSError, ValueError, EOFError):  # not an npz: reading it as an array says why
        return False


def write_statistics(
    path: Path,
    moments: Moments,
    extractor: FeatureExtractor,
    image_shape: tuple[int, int, int],
    source: str,
) -> Path:
    """Write `moments` with the identity of the features they summarise; atomically."""
    fields = {
        "mu": moments.mu.double().numpy(),
        "sigma": moments.sigma.double().numpy(),
        "n": np.int64(moments.n),
        "extractor": np.str_(extractor.name),
        "weights_sha256": np.str_(extractor.weights_sha256),
        "image_shape": np.asarray(image_shape, dtype=np.int64),
        "source": np.str_(source),
    }

    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:  # a file object: np.savez would append .npz to a path
            np.savez(file, **fields)

    write_atomically(path, write)
    return path


def read_statistics(
    path: Path, extractor: FeatureExtractor, accept_unnamed: bool, key: str = "reference"
) -> tuple[Moments, tuple[int, int, int] | None, str]:
    """(moments, image shape or None, source) of a statistics file made by `extractor`.

    A file naming another extractor or other weights is refused in one line; a file that
    names none (pytorch-fid's, ADM's) only with `accept_unnamed`, and its feature
    dimension must still match.
    """
    arrays = load_arrays(path, key)
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    dim = extractor.num_features
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise GenlabError(
            f"{key}={path} holds statistics of {mu.shape[-1] if mu.ndim else '?'}-d features, "
            f"but the {extractor.name} extractor makes {dim}-d ones; use statistics of the same "
            f"extractor (genlab-stats ... metrics=fid_{extractor.name})"
        )
    if "extractor" not in arrays:
        if not accept_unnamed:
            raise GenlabError(
                f"{key}={path} does not say which extractor made it (no 'extractor' entry, as in "
                "pytorch-fid's and ADM's files); set accept_unnamed_stats=true if you know it was "
                f"{extractor.name} with the same weights, or recompute it with genlab-stats"
            )
    else:
        name, weights = str(arrays["extractor"]), str(arrays["weights_sha256"])
        if (name, weights) != (extractor.name, extractor.weights_sha256):
            raise GenlabError(
                f"{key}={path} holds statistics of the {name} extractor (weights {weights[:12]}), "
                f"but this evaluation uses {extractor.name} (weights "
                f"{extractor.weights_sha256[:12]}); statistics of different extractors cannot be "
                f"compared: recompute them with genlab-stats ... metrics=fid_{extractor.name}"
            )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise GenlabError(f"{key}={path} holds NaN or infinite moments; recompute it")
    n = int(arrays["n"]) if "n" in arrays else None
    shape = tuple(int(v) for v in arrays["image_shape"]) if "image_shape" in arrays else None
    source = str(arrays["source"]) if "source" in arrays else str(path)
    return Moments(torch.from_numpy(mu), torch.from_numpy(sigma), n), shape, source
