"""Post-hoc EMA: choose the EMA length after training (Karras et al. 2024, "Analyzing and
Improving the Training Dynamics of Diffusion Models", EDM2, sec. 3 and appendix C).

A power-function EMA averages the weights theta(tau) of a run up to step t with the profile
p_{t,gamma}(tau) = (gamma + 1) tau^gamma / t^(gamma + 1) on 0 <= tau <= t. Its width grows with
t, so it is given relative to t: sigma_rel, the profile's standard deviation divided by t.
Training tracks two such profiles and saves their averages every few thousand steps; after
training, any other profile (another sigma_rel, at any step up to the last snapshot) is
approximated by the combination of the saved profiles closest to it in L2, and since an
average is linear in its profile, the same combination of the saved averages gives its
weights.

The per-step update with beta_t = (1 - 1/t)^(gamma + 1) weighs the weights of step tau in
the average at step t by (tau^(gamma + 1) - (tau - 1)^(gamma + 1)) / t^(gamma + 1), the
integral of p_{t,gamma} over (tau - 1, tau]: the tracked average is exactly the continuous
profile applied to weights held constant over each step, so the closed-form inner products
of the continuous profiles are the right ones for the snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genlab.utils.numbers import is_number

MAX_SIGMA_REL = 12**-0.5  # sigma_rel of the uniform profile, gamma = 0


def is_sigma_rel(value: object) -> bool:
    """Whether `value` is a length a power profile has: a number in (0, MAX_SIGMA_REL)."""
    return is_number(value) and 0 < value < MAX_SIGMA_REL  # type: ignore[operator]


def exp_to_std(gamma: float) -> float:
    """sigma_rel of the power profile with exponent gamma (EDM2 eq. 3; appendix eq. 123):
    sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))), the standard deviation of tau / t
    under the density (gamma + 1) x^gamma on [0, 1]."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def std_to_exp(sigma_rel: float) -> float:
    """The exponent gamma > 0 whose profile has relative width `sigma_rel` (appendix eq. 126,
    Algorithm 2): squaring eq. 3 gives gamma^3 + 7 gamma^2 + (16 - s) gamma + (12 - s) = 0
    with s = sigma_rel^-2. For s > 12 it has exactly one positive root; the roots sum to -7,
    so any complex pair has a negative real part and the largest real part is that root."""
    if not is_sigma_rel(sigma_rel):
        raise ValueError(f"sigma_rel must be in (0, {MAX_SIGMA_REL:.4f}), got {sigma_rel}")
    s = sigma_rel**-2
    return float(np.roots([1.0, 7.0, 16.0 - s, 12.0 - s]).real.max())


def power_beta(step: int, gamma: float) -> float:
    """beta_t = (1 - 1/t)^(gamma + 1), the old average's weight at step t >= 1 (EDM2 sec. 3;
    appendix eq. 127); beta_1 = 0, so the first step copies the weights."""
    if step < 1:
        raise ValueError(f"steps are counted from 1, got {step}")
    return (1.0 - 1.0 / step) ** (gamma + 1.0)


def sigma_rel_of_decay(decay: float, steps: int) -> float:
    """The sigma_rel of a classic EMA with constant `decay` at step `steps` of a run.

    A classic EMA weighs the weights of k steps back by (1 - decay) decay^k: a geometric
    distribution over k, of standard deviation sqrt(decay) / (1 - decay) steps (about
    half-life / ln 2 for decay near 1). Dividing by the run length gives sigma_rel, EDM2's
    measure of EMA length (sec. 3: the profile's standard deviation relative to t). The
    truncation at the start of the run is ignored, which holds while the profile's tail
    (several standard deviations) fits in the run. `std_to_exp` of the result is the
    exponent of the power profile of the same relative width."""
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay}")
    return math.sqrt(decay) / (1.0 - decay) / steps


def power_profile_dot(
    step_a: Tensor | float, gamma_a: Tensor | float, step_b: Tensor | float, gamma_b: Tensor | float
) -> Tensor:
    """<p_a, p_b> = int_0^inf p_{t_a,gamma_a} p_{t_b,gamma_b} dtau in closed form, broadcast
    over the arguments (appendix eq. 151, Algorithm 3). Both profiles are nonzero only up to
    the shorter run t_s; the integral of tau^(gamma_a + gamma_b) there leaves
    (gamma_a + 1)(gamma_b + 1) / ((gamma_a + gamma_b + 1) t_l) * (t_s / t_l)^gamma_l, with
    t_l and gamma_l those of the longer run."""
    t_a, g_a, t_b, g_b = (
        torch.as_tensor(v, dtype=torch.float64) for v in (step_a, gamma_a, step_b, gamma_b)
    )
    t_short, t_long = torch.minimum(t_a, t_b), torch.maximum(t_a, t_b)
    gamma_long = torch.where(t_a <= t_b, g_b, g_a)
    scale = (g_a + 1) * (g_b + 1) / ((g_a + g_b + 1) * t_long)
    return scale * (t_short / t_long) ** gamma_long


def solve_weights(
    snapshot_steps: Sequence[int],
    snapshot_gammas: Sequence[float],
    target_step: int,
    target_gamma: float,
) -> Tensor:
    """Coefficients x of the snapshots whose combined profile sum_i x_i p_i is closest in L2
    to the target profile (appendix C.3, Algorithm 3): the normal equations A x = b with the
    Gram matrix A_ij = <p_i, p_j> and b_i = <p_i, p_target>, solved in float64 by least
    squares (A is ill-conditioned when snapshots are dense). As in EDM2's reference code the
    solution is then scaled to sum to 1, so the combined profile keeps unit mass and a
    constant weight stays that constant; the scale differs from 1 only by the fit's error."""
    steps = torch.as_tensor(snapshot_steps, dtype=torch.float64)
    gammas = torch.as_tensor(snapshot_gammas, dtype=torch.float64)
    if steps.shape != gammas.shape or steps.dim() != 1:
        raise ValueError("snapshot_steps and snapshot_gammas must be two lists of one length")
    gram = power_profile_dot(steps[:, None], gammas[:, None], steps[None, :], gammas[None, :])
    target = power_profile_dot(steps, gammas, float(target_step), float(target_gamma))
    x = torch.linalg.lstsq(gram, target[:, None]).solution[:, 0]
    return x / x.sum()


def profile_error(
    snapshot_steps: Sequence[int],
    snapshot_gammas: Sequence[float],
    target_step: int,
    target_gamma: float,
    coefficients: Tensor,
) -> float:
    """||sum_i x_i p_i - p_target|| / ||p_target||: how far the rebuilt average's profile is
    from the one asked for (0 for a stored profile; large for a length far below the stored
    ones, which no combination of them can average that briefly)."""
    steps = torch.as_tensor(snapshot_steps, dtype=torch.float64)
    gammas = torch.as_tensor(snapshot_gammas, dtype=torch.float64)
    gram = power_profile_dot(steps[:, None], gammas[:, None], steps[None, :], gammas[None, :])
    cross = power_profile_dot(steps, gammas, float(target_step), float(target_gamma))
    norm = power_profile_dot(float(target_step), target_gamma, float(target_step), target_gamma)
    x = coefficients.to(torch.float64)
    squared = x @ gram @ x - 2 * x @ cross + norm
    return float(squared.clamp(min=0).sqrt() / norm.sqrt())


def reconstruct(
    snapshots: Sequence[Mapping[str, Tensor]], coefficients: Tensor
) -> dict[str, Tensor]:
    """sum_i x_i snapshot_i for the floating-point tensors, accumulated in float64 (the
    coefficients have both signs and can be large for dense snapshots, so terms cancel) and
    returned in the snapshots' dtype. Other tensors (counters such as batch norm's
    num_batches_tracked) are copied from the last snapshot, the latest when given in step
    order."""
    if len(snapshots) != len(coefficients) or not snapshots:
        raise ValueError(f"{len(snapshots)} snapshots for {len(coefficients)} coefficients")
    out: dict[str, Tensor] = {}
    for name, last in snapshots[-1].items():
        if not last.is_floating_point():
            out[name] = last.clone()
            continue
        total = torch.zeros(last.shape, dtype=torch.float64, device=last.device)
        for snapshot, x in zip(snapshots, coefficients.tolist(), strict=True):
            total += x * snapshot[name].double()
        out[name] = total.to(last.dtype)
    return out


def _accumulator(value: Tensor) -> Tensor:
    """A copy of `value` to average into: floats in at least float32, since the increments
    (1 - beta) ~ (gamma + 1) / t of a long run vanish in half precision."""
    dtype = value.dtype
    if value.is_floating_point():
        dtype = torch.promote_types(dtype, torch.float32)
    return value.detach().to(dtype, copy=True)


class PowerEMA:
    """Power-function EMAs of a state dict, one per sigma_rel (EDM2 sec. 3; EDM2 tracks
    sigma_rel 0.05 and 0.10).

    `update(state, step)` after every optimizer step, step = 1, 2, ... with no gaps (the
    profile is defined in updates); floating-point tensors are averaged, the others (integer
    counters) copied. `snapshot()` returns copies of the averages, to be saved for
    `solve_weights` / `reconstruct`; `state_dict()` / `load_state_dict()` carry the averages
    and the step across a resumed run.
    """

    def __init__(self, sigma_rels: Sequence[float]) -> None:
        self.sigma_rels = [float(s) for s in sigma_rels]
        self.gammas = [std_to_exp(s) for s in self.sigma_rels]
        self.step = 0
        self.averages: list[dict[str, Tensor]] = [{} for _ in self.sigma_rels]

    @torch.no_grad()
    def update(self, state: Mapping[str, Tensor], step: int) -> None:
        """Fold the weights of `step` into every average."""
        if step != self.step + 1:
            raise ValueError(f"expected step {self.step + 1}, got {step}")
        for gamma, average in zip(self.gammas, self.averages, strict=True):
            weight = 1.0 - power_beta(step, gamma)
            for name, value in state.items():
                if step == 1 or not value.is_floating_point():
                    average[name] = _accumulator(value)
                else:
                    average[name].lerp_(value.detach().to(average[name].dtype), weight)
        self.step = step

    def snapshot(self) -> list[dict[str, Tensor]]:
        """Copies of the current averages, one dict per sigma_rel, in `sigma_rels` order."""
        return [{name: t.clone() for name, t in average.items()} for average in self.averages]

    def state_dict(self) -> dict[str, Any]:
        """The profiles, the last step and the averages (the live tensors, as
        `Module.state_dict` returns them)."""
        return {"sigma_rels": list(self.sigma_rels), "step": self.step, "averages": self.averages}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from `state_dict()`; the profiles must match, since averages of other widths
        would be silently continued with the wrong beta."""
        if list(state["sigma_rels"]) != self.sigma_rels:
            raise ValueError(f"saved sigma_rels {state['sigma_rels']} != {self.sigma_rels}")
        self.step = int(state["step"])
        self.averages = [{n: t.clone() for n, t in avg.items()} for avg in state["averages"]]
