"""Flow-matching probability paths and noise-data couplings.

x0 is noise, x1 data; time runs from 0 (noise) to 1 (data), as in the flow samplers.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def linear_path(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Conditional flow matching (Lipman et al. 2023) on the straight path of rectified
    flow (Liu et al. 2023): x_t = (1 - t) x0 + t x1, target velocity x1 - x0.

    `t` has one time per image, shape (N,), broadcast over the image dimensions. Regressing
    the target on x_t gives E[x1 - x0 | x_t], the velocity of the marginal path.
    """
    t = t.to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * x1, x1 - x0


def ot_pairing(x0: Tensor, x1: Tensor) -> Tensor:
    """Minibatch optimal transport (Tong et al. 2023, OT-CFM): the permutation `perm` for
    which pairing x0[perm] with x1 minimises sum_i ||x0[perm[i]] - x1[i]||^2.

    Solved exactly by the Hungarian algorithm on the (N, N) cost matrix of flattened
    images. The pairing is over the whole batch, whatever the labels: the noise is
    re-assigned to the images and the labels stay with their images, so a class-conditional
    model needs nothing more.
    """
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()).pow(2)
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    perm = torch.empty(len(cols), dtype=torch.long)
    perm[torch.as_tensor(cols)] = torch.as_tensor(rows)
    return perm.to(x0.device)
