"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

Each set's manifold is the union of closed balls around its points, with radius the
distance to the point's k-th nearest neighbour in the same set. Precision is the
share of generated points inside the real manifold (fidelity); recall is the share
of real points inside the generated manifold (coverage).

The balls and the counting are torch-fidelity's (`torch_fidelity.metric_prc`, the
implementation behind its `prc` metric), whose numbers equal the paper's definition
computed with full distance matrices (tests/test_metric_references.py); genlab adds the
paper's protocol of equal-sized sets, which torch-fidelity leaves to its caller.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_fidelity.metric_prc import calculate_precision_recall_part

DISTANCE_BLOCK = 1024  # rows of the distance matrix held at once (1024 x 10,000 float64: 80 MB)


def kth_neighbour_radii(points: Tensor, k: int, chunk: int = DISTANCE_BLOCK) -> Tensor:
    """Distance from each point to its k-th nearest other point."""
    radii = []
    for block in points.split(chunk):
        distances = torch.cdist(block, points)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at 0
    return torch.cat(radii)


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
    # torch-fidelity's convention: the generated features first, the real ones second
    precision, recall = calculate_precision_recall_part(fake, real, k, DISTANCE_BLOCK)
    return float(precision), float(recall)
