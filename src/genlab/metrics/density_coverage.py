"""Density and coverage (Naeem, Oh, Uh, Choi & Yoo, "Reliable Fidelity and Diversity
Metrics for Generative Models", ICML 2020).

Only the real points carry balls (radius: the distance to the k-th nearest other real
point), since real data has no outliers made by a generator:

    density  = 1 / (k M) * sum_j sum_i 1[ ||Y_j - X_i|| <= r_i ]
    coverage = 1 / N * sum_i 1[ min_j ||Y_j - X_i|| <= r_i ]

with N real points X_i and M generated points Y_j. Density counts how many real balls
each sample falls into (1 on average when the two distributions are equal; above 1 for
samples packed around dense real regions); coverage is the share of real points whose
ball holds at least one sample. For equal distributions and N = M the expected coverage
is 1 - (N-1)!(2N-k-1)! / ((2N-1)!(N-k-1)!) -> 1 - 2^-k (0.969 at the paper's k = 5).
Like precision/recall, computed on equal-sized sets, with closed balls.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.metrics.precision_recall import DISTANCE_BLOCK, equal_sizes, kth_neighbour_radii


def density_coverage(real: Tensor, fake: Tensor, k: int = 5, seed: int = 0) -> tuple[float, float]:
    """(density, coverage) of `fake` features against `real` features, on equal-sized sets."""
    real, fake = equal_sizes(real.double(), fake.double(), seed)
    radii = kth_neighbour_radii(real, k)
    balls_hit = torch.zeros(len(fake), dtype=torch.float64, device=fake.device)
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for start in range(0, len(real), DISTANCE_BLOCK):
        block = real[start : start + DISTANCE_BLOCK]
        inside = torch.cdist(fake, block) <= radii[start : start + DISTANCE_BLOCK].unsqueeze(0)
        balls_hit += inside.sum(dim=1)
        covered[start : start + DISTANCE_BLOCK] = inside.any(dim=0)
    density = balls_hit.sum() / (k * len(fake))
    return float(density), float(covered.double().mean())
