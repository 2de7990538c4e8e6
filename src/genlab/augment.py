"""Differentiable augmentation for GANs on small datasets (Zhao et al., NeurIPS 2020, DiffAugment).

The same random transformation family T is applied to every image the discriminator
sees, real and generated, in the discriminator's and the generator's update:
L_D = f(D(T(x)), D(T(G(z)))), L_G = g(D(T(G(z)))). Because T is differentiable,
G's gradient passes through it, and D cannot overfit the few real images it has.
The operations follow the authors' reference code, on images in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError


def _per_image(x: Tensor) -> Tensor:
    """One uniform [0, 1) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: Tensor) -> Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
    x = x + (_per_image(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_per_image(x) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image(x) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to `ratio` of its side in each direction, padding with zeros."""
    b, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, (b, 1, 1), device=x.device)
    batch, rows, cols = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    rows = (rows + dy + 1).clamp(0, h + 1)
    cols = (cols + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of `ratio` of the side per image, at a random place."""
    b, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_h % 2), (b, 1, 1), device=x.device)
    left = torch.randint(0, w + (1 - size_w % 2), (b, 1, 1), device=x.device)
    batch, rows, cols = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(size_h, device=x.device),
        torch.arange(size_w, device=x.device),
        indexing="ij",
    )
    rows = (rows + top - size_h // 2).clamp(0, h - 1)
    cols = (cols + left - size_w // 2).clamp(0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[batch, rows, cols] = 0
    return x * mask.unsqueeze(1)


OPERATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


class DiffAugment(nn.Module):
    """Apply the named operations in order, with fresh randomness on every call."""

    def __init__(self, policy: Sequence[str]) -> None:
        super().__init__()
        unknown = [name for name in policy if name not in OPERATIONS]
        if unknown:
            raise ConfigError(
                f"model.augment={list(policy)} has unknown operations {unknown}; "
                f"choose from {', '.join(OPERATIONS)} (or [] for none)"
            )
        self.policy = list(policy)

    def forward(self, x: Tensor) -> Tensor:
        for name in self.policy:
            x = OPERATIONS[name](x)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"policy={self.policy}"
