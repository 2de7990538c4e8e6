"""Independent implementations of metrics from their papers' formulas, in NumPy."""

from __future__ import annotations

import numpy as np


def unbiased_mmd2_cubic(x: np.ndarray, y: np.ndarray) -> float:
    """Bińkowski et al. 2018: the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def reference_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019 with full distance matrices: a point is inside a set's manifold
    when it lies within the k-th nearest-neighbour radius of some point of that set."""

    def radii(points: np.ndarray) -> np.ndarray:
        distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
        return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself

    def inside(queries: np.ndarray, points: np.ndarray) -> float:
        distances = np.linalg.norm(queries[:, None] - points[None], axis=-1)
        return float((distances <= radii(points)[None]).any(axis=1).mean())

    return inside(fake, real), inside(real, fake)
