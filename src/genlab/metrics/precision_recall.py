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


def equal_sizes(real: Tensor, fake: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Cut the larger set to a seeded random subset of the smaller one's size.

    The k-NN radii shrink as a set grows, so the paper compares equal-sized sets.
    """
    n = min(len(real), len(fake))
    generator = torch.Generator().manual_seed(seed)
    return tuple(
        points[torch.randperm(len(points), generator=generator)[:n].to(points.device)]
        if len(points) > n
        else points
        for points in (real, fake)
    )


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, seed: int = 0) -> tuple[float, float]:
    """(precision, recall) of `fake` features against `real` features, on equal-sized sets."""
    real, fake = equal_sizes(real.double(), fake.double(), seed)
    precision = inside_manifold(fake, real, kth_neighbour_radii(real, k))
    recall = inside_manifold(real, fake, kth_neighbour_radii(fake, k))
    return float(precision), float(recall)
