"""Time grids: the noise levels a sampler visits, decreasing and ending at 0 (clean data),
as Python floats. `steps` is the number of intervals.

- `own`: the family's training-time grid (flow: t uniform in [0, 1]; DDPM: strided
  timesteps; EDM: Karras').
- `karras`: Karras et al. 2022, eq. 5: uniform in sigma^(1/rho), rho = 7, dense near
  sigma_min, over the process's [sigma_min, sigma_max].
- `exponential`: uniform in log sigma, i.e. in the log-SNR, the "time" of DPM-Solver
  (Lu et al. 2022) and k-diffusion's `get_sigmas_exponential`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from genlab.denoising.processes import NoiseProcess


def karras(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> list[float]:
    """sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
    for i < N = `steps`, then 0; one step is sigma_max straight to 0."""
    if steps == 1:
        return [sigma_max, 0.0]
    high, low = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(high + i / (steps - 1) * (low - high)) ** rho for i in range(steps)] + [0.0]


def exponential(sigma_min: float, sigma_max: float, steps: int) -> list[float]:
    """`steps` levels uniform in log sigma from sigma_max to sigma_min, then 0."""
    if steps == 1:
        return [sigma_max, 0.0]
    high, low = math.log(sigma_max), math.log(sigma_min)
    return [math.exp(high + i / (steps - 1) * (low - high)) for i in range(steps)] + [0.0]


GRIDS: dict[str, Callable[[NoiseProcess, int, float], list[float]]] = {
    "own": lambda process, steps, rho: process.own_grid(steps),
    "karras": lambda process, steps, rho: karras(process.sigma_min, process.sigma_max, steps, rho),
    "exponential": lambda process, steps, rho: exponential(
        process.sigma_min, process.sigma_max, steps
    ),
}


def noise_levels(process: NoiseProcess, grid: str, steps: int, rho: float = 7.0) -> list[float]:
    """The `grid` (a name of GRIDS) of `steps` intervals for `process`."""
    return GRIDS[grid](process, steps, rho)
