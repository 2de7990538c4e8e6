"""The random-number generators of a run, as plain data a checkpoint can carry.

Lightning's checkpoints hold weights, optimisers and loop progress but not the RNGs,
so a resumed run would draw different latents, noise and dropout masks than the run it
continues. These states are kept in types that `torch.load(weights_only=True)` reads.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    """The states of torch (CPU and every CUDA device), numpy and Python's `random`."""
    kind, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gauss),
        "python": random.getstate(),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put every generator back where `rng_states()` found it."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached_gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
