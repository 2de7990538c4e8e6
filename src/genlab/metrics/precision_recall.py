"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

Each set's manifold is the union of balls around its points, with radius the
distance to the point's k-th nearest neighbour in the same set. Precision is the
share of generated points inside the real manifold (fidelity); recall is the share
of real points inside the generated manifold (coverage).
"""

from __future__ import annotations

import torch
from torch import Tensor


def kth_neighbour_radii(points: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance from each point to its k-th nearest other point."""
    radii = []
    for block in points.split(chunk):
        distances = torch.cdist(block, points)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at 0
    return torch.cat(radii)


def inside_manifold(queries: Tensor, points: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """Share of `queries` within radius of at least one of `points`."""
    hits = [
        (torch.cdist(block, points) <= radii.unsqueeze(0)).any(dim=1)
        for block in queries.split(chunk)
    ]
    return torch.cat(hits).float().mean()


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of `fake` features against `real` features."""
    real, fake = real.double(), fake.double()
    precision = inside_manifold(fake, real, kth_neighbour_radii(real, k))
    recall = inside_manifold(real, fake, kth_neighbour_radii(fake, k))
    return float(precision), float(recall)
