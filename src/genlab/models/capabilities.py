"""Optional capabilities of a model family, tested by what a model can do, not by its class.

A caller that needs more than `generate` (reconstructions, a fitted latent mixture, a
likelihood bound) checks `isinstance(model, Encodes)`: runtime-checkable protocols match
any model with the method, so a new family gains a feature by implementing it, and no
caller names a model class.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Encodes(Protocol):
    """Maps images to the latents `sample` decodes (a VAE: the posterior mean)."""

    def encode(self, images: Tensor, labels: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class HasLikelihood(Protocol):
    """Bounds log p(x) of held-out images (a VAE: the ELBO and the importance-weighted bound)."""

    def log_likelihood(
        self, loader: torch.utils.data.DataLoader, k: int, device: torch.device
    ) -> dict[str, float]: ...
