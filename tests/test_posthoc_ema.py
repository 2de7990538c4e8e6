"""Post-hoc EMA (EDM2, Karras et al. 2024) against closed forms and a directly tracked EMA.

The weights follow a seeded random walk in float64. Tracking with beta_t = (1 - 1/t)^(gamma+1)
weighs step tau in the average at step t by exactly (tau^(gamma+1) - (tau-1)^(gamma+1)) /
t^(gamma+1); `binned_profile` is that closed form, computed here independently of the module.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from torch import Tensor

from genlab.posthoc_ema import (
    PowerEMA,
    exp_to_std,
    power_profile_dot,
    profile_error,
    reconstruct,
    sigma_rel_of_decay,
    solve_weights,
    std_to_exp,
)

STORED = (0.05, 0.10)  # the two profiles a run tracks, as in EDM2
TARGET = 0.075  # a profile between them, not in the span of the stored ones
STEPS, EVERY, DIM = 512, 64, 256  # run length, snapshot interval, weights per step


def random_walk(steps: int = STEPS, dim: int = DIM, seed: int = 0) -> Tensor:
    """(steps, dim) weights in float64; row tau - 1 holds the weights of step tau."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps, dim, generator=g, dtype=torch.float64).cumsum(0)


def binned_profile(step: int, gamma: float, steps: int = STEPS) -> Tensor:
    """The weight of each step tau = 1..steps in the power-function average at `step`."""
    tau = torch.arange(1, steps + 1, dtype=torch.float64).clamp(max=step)
    w = (tau ** (gamma + 1) - (tau - 1) ** (gamma + 1)) / step ** (gamma + 1)
    return torch.where(torch.arange(1, steps + 1) <= step, w, 0.0)


def track(
    trajectory: Tensor, sigma_rels: list[float]
) -> tuple[PowerEMA, list[dict[str, Tensor]], list[tuple[int, float]]]:
    """Run a PowerEMA over the trajectory; snapshot every EVERY steps. Returns the tracker,
    the snapshots (one dict per profile and snapshot step, in step order) and their
    (step, gamma) labels."""
    ema = PowerEMA(sigma_rels)
    snapshots, labels = [], []
    for step, weights in enumerate(trajectory, start=1):
        ema.update({"w": weights, "count": torch.tensor(step)}, step)
        if step % EVERY == 0:
            snapshots += ema.snapshot()
            labels += [(step, gamma) for gamma in ema.gammas]
    return ema, snapshots, labels


def test_tracked_average_is_the_binned_power_profile() -> None:
    # Exact in real arithmetic; measured float64 error 4.8e-16 relative to the weights'
    # scale, asserted at 1e-13.
    trajectory = random_walk()
    ema = PowerEMA(list(STORED))
    for step, weights in enumerate(trajectory, start=1):
        ema.update({"w": weights}, step)
        if step in (1, 2, 37, STEPS):
            for gamma, average in zip(ema.gammas, ema.snapshot(), strict=True):
                expected = binned_profile(step, gamma) @ trajectory
                scale = trajectory[:step].abs().max().item()
                torch.testing.assert_close(average["w"], expected, rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize(
    ("step_a", "sigma_a", "step_b", "sigma_b"),
    [(300, 0.05, 500, 0.10), (500, 0.05, 300, 0.10), (400, 0.075, 400, 0.075), (7, 0.2, 9, 0.01)],
)
def test_profile_inner_product_matches_quadrature(
    step_a: int, sigma_a: float, step_b: int, sigma_b: float
) -> None:
    # The closed form against adaptive quadrature of p_a p_b over the shorter run (asked for
    # 1e-12); measured agreement 2.9e-15 relative at worst, asserted at 1e-10.
    gamma_a, gamma_b = std_to_exp(sigma_a), std_to_exp(sigma_b)

    def p(tau: float, step: int, gamma: float) -> float:
        return (gamma + 1) * tau**gamma / step ** (gamma + 1)

    integral, _ = quad(
        lambda tau: p(tau, step_a, gamma_a) * p(tau, step_b, gamma_b),
        0,
        min(step_a, step_b),
        epsabs=0,
        epsrel=1e-12,
    )
    closed = power_profile_dot(step_a, gamma_a, step_b, gamma_b).item()
    assert closed == pytest.approx(integral, rel=1e-10)


def test_reconstructed_profile_is_close_to_the_target_profile() -> None:
    # The target is not in the span, so the fit is approximate: measured relative L2 error of
    # the combined per-step profile 0.0125 (snapshots of 0.05 and 0.10 every 64 of 512 steps),
    # asserted below 0.02. Provable: each step's weight is the integral of the continuous
    # profile over that step, so by Cauchy-Schwarz the per-step error's squared norm is at
    # most the continuous one, |sum_i x_i p_i - p|^2 = x'Ax - 2x'b + c.
    steps = [s for s in range(EVERY, STEPS + 1, EVERY) for _ in STORED]
    gammas = [std_to_exp(s) for _ in range(EVERY, STEPS + 1, EVERY) for s in STORED]
    target_gamma = std_to_exp(TARGET)
    x = solve_weights(steps, gammas, STEPS, target_gamma)

    combined = sum(xi * binned_profile(t, g) for xi, t, g in zip(x, steps, gammas, strict=True))
    target = binned_profile(STEPS, target_gamma)
    error = combined - target
    assert (error.norm() / target.norm()).item() < 0.02

    t, g = torch.tensor(steps, dtype=torch.float64), torch.tensor(gammas, dtype=torch.float64)
    gram = power_profile_dot(t[:, None], g[:, None], t[None, :], g[None, :])
    b = power_profile_dot(t, g, STEPS, target_gamma)
    c = power_profile_dot(STEPS, target_gamma, STEPS, target_gamma)
    continuous_error2 = (x @ gram @ x - 2 * x @ b + c).item()
    assert error.square().sum().item() <= continuous_error2 * (1 + 1e-9)


def test_reconstruction_matches_the_directly_tracked_profile() -> None:
    # Track 0.05, 0.10 and 0.075 on one random walk; rebuild 0.075 at the last step from the
    # 0.05 / 0.10 snapshots alone. Measured error 0.0072 of the gap between the 0.05 and 0.10
    # averages (the scale a wrong EMA length errs on), asserted below 0.02.
    trajectory = random_walk()
    direct, _, _ = track(trajectory, [TARGET])
    stored, snapshots, labels = track(trajectory, list(STORED))
    steps, gammas = zip(*labels, strict=True)
    x = solve_weights(steps, gammas, STEPS, std_to_exp(TARGET))

    rebuilt = reconstruct(snapshots, x)["w"]
    wanted = direct.snapshot()[0]["w"]
    narrow, wide = (average["w"] for average in stored.snapshot())
    assert ((rebuilt - wanted).norm() / (narrow - wide).norm()).item() < 0.02

    # Provable per weight: the combined profile has unit mass, so the error is
    # sum_tau dw(tau) (theta_tau - mean), at most |dw| |theta - mean| <= |dp| |theta - mean|
    # (the largest error measured is 0.29 of this bound).
    t, g = torch.tensor(steps, dtype=torch.float64), torch.tensor(gammas, dtype=torch.float64)
    gram = power_profile_dot(t[:, None], g[:, None], t[None, :], g[None, :])
    b = power_profile_dot(t, g, STEPS, std_to_exp(TARGET))
    c = power_profile_dot(STEPS, std_to_exp(TARGET), STEPS, std_to_exp(TARGET))
    profile_error = (x @ gram @ x - 2 * x @ b + c).sqrt()
    spread = (trajectory - trajectory.mean(0)).norm(dim=0)
    assert bool(((rebuilt - wanted).abs() <= profile_error * spread + 1e-9).all())


@pytest.mark.parametrize("profile", [0, 1])
def test_reconstructing_a_stored_profile_returns_its_snapshot(profile: int) -> None:
    # The target is in the span: the coefficients are the unit vector (measured 1.5e-15 off)
    # and the reconstruction is the snapshot (measured 5.3e-16 relative), both asserted at
    # 1e-12, although later snapshots are offered too.
    _, snapshots, labels = track(random_walk(), list(STORED))
    index = 3 * len(STORED) + profile  # the snapshot at step 4 * EVERY
    step, gamma = labels[index]
    x = solve_weights(*zip(*labels, strict=True), step, gamma)
    expected = torch.zeros_like(x)
    expected[index] = 1
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-12)
    rebuilt = reconstruct(snapshots, x)["w"]
    scale = snapshots[index]["w"].abs().max().item()
    torch.testing.assert_close(rebuilt, snapshots[index]["w"], rtol=0, atol=1e-12 * scale)


def test_reconstruction_keeps_a_constant_weight() -> None:
    # The coefficients are scaled to sum to 1 (unscaled they sum to 1.0011 here), so a weight
    # that never changed comes back unchanged for a target outside the span (measured 4.4e-16
    # off, asserted at 1e-12).
    _, snapshots, labels = track(random_walk(), list(STORED))
    constant = {"w": torch.full((3,), 2.5, dtype=torch.float64)}
    x = solve_weights(*zip(*labels, strict=True), STEPS, std_to_exp(TARGET))
    rebuilt = reconstruct([constant] * len(snapshots), x)["w"]
    torch.testing.assert_close(rebuilt, constant["w"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 6.94, 16.97, 100.0])
def test_gamma_round_trips_through_sigma_rel(gamma: float) -> None:
    # Measured 2.2e-16 relative at worst, asserted at 1e-12.
    assert std_to_exp(exp_to_std(gamma)) == pytest.approx(gamma, rel=1e-12)


def test_sigma_rel_matches_the_papers_exponents() -> None:
    # EDM2 sec. 3: sigma_rel 0.05 and 0.10 are gamma = 16.97 and 6.94.
    assert std_to_exp(0.05) == pytest.approx(16.97, abs=0.005)
    assert std_to_exp(0.10) == pytest.approx(6.94, abs=0.005)


def test_tracked_profile_has_the_requested_relative_std() -> None:
    # Tracking tau / T and (tau / T)^2 gives the first two moments of the averaging profile
    # over the run; their std is sigma_rel up to the binning of a 4000-step run (measured
    # 9e-7 relative for 0.05, less for wider profiles), asserted at 1e-5.
    steps = 4000
    ema = PowerEMA([0.05, 0.10, 0.2])
    for step in range(1, steps + 1):
        x = torch.tensor(step / steps, dtype=torch.float64)
        ema.update({"m1": x, "m2": x * x}, step)
    for sigma_rel, average in zip(ema.sigma_rels, ema.snapshot(), strict=True):
        std = math.sqrt((average["m2"] - average["m1"] ** 2).item())
        assert std == pytest.approx(sigma_rel, rel=1e-5)


def test_classic_decay_maps_to_the_std_of_its_profile() -> None:
    # A classic EMA started by copying the weights at step 1 weighs step tau of a T-step run
    # by (1 - beta) beta^(T - tau), and step 1 by beta^(T - 1). For beta = 0.999 at 20,000
    # steps its std / T matches the formula to 4e-8 relative (asserted at 1e-6).
    decay, steps = 0.999, 20_000
    age = np.arange(steps)
    weight = (1 - decay) * decay**age
    weight[-1] = decay ** (steps - 1)
    mean = (weight * age).sum()
    std = math.sqrt((weight * (age - mean) ** 2).sum())
    assert sigma_rel_of_decay(decay, steps) == pytest.approx(std / steps, rel=1e-6)


def test_resumed_tracker_continues_exactly() -> None:
    trajectory = random_walk(steps=200, dim=16)
    whole = PowerEMA(list(STORED))
    for step, weights in enumerate(trajectory, start=1):
        whole.update({"w": weights}, step)

    first = PowerEMA(list(STORED))
    for step, weights in enumerate(trajectory[:123], start=1):
        first.update({"w": weights}, step)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    del first
    buffer.seek(0)
    resumed = PowerEMA(list(STORED))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for step, weights in enumerate(trajectory[123:], start=124):
        resumed.update({"w": weights}, step)

    for a, b in zip(whole.snapshot(), resumed.snapshot(), strict=True):
        assert torch.equal(a["w"], b["w"])


def test_tracker_rejects_a_gap_in_the_steps() -> None:
    ema = PowerEMA(list(STORED))
    ema.update({"w": torch.zeros(2)}, 1)
    with pytest.raises(ValueError, match="expected step 2"):
        ema.update({"w": torch.zeros(2)}, 3)


def test_integer_tensors_are_copied_not_averaged() -> None:
    # A counter such as batch norm's num_batches_tracked keeps the latest value and dtype,
    # in the tracked averages and in a reconstruction.
    _, snapshots, labels = track(random_walk(steps=128), list(STORED))
    for snapshot, (step, _) in zip(snapshots, labels, strict=True):
        assert snapshot["count"].dtype == torch.int64
        assert snapshot["count"].item() == step
    x = solve_weights(*zip(*labels, strict=True), 128, std_to_exp(TARGET))
    assert reconstruct(snapshots, x)["count"].item() == 128


def test_half_precision_weights_are_averaged_in_float32() -> None:
    # Late in a run an update moves the average by (gamma + 1) / t of the gap, below half
    # precision's resolution; the averages are kept in float32. Measured error against a
    # float64 tracker of the same float16 weights 1.8e-7 relative (float16 averages: 2.7e-3),
    # asserted at 1e-5.
    half = random_walk(dim=16).half()
    low, high = PowerEMA(list(STORED)), PowerEMA(list(STORED))
    for step, weights in enumerate(half, start=1):
        low.update({"w": weights}, step)
        high.update({"w": weights.double()}, step)
    for a, b in zip(low.snapshot(), high.snapshot(), strict=True):
        assert a["w"].dtype == torch.float32
        scale = b["w"].abs().max().item()
        torch.testing.assert_close(a["w"].double(), b["w"], rtol=0, atol=1e-5 * scale)


def continuous_profile(tau: np.ndarray, step: float, gamma: float) -> np.ndarray:
    return np.where(tau <= step, (gamma + 1) * tau**gamma / step ** (gamma + 1), 0.0)


@pytest.mark.parametrize("target", [0.01, TARGET, 0.2])
def test_profile_error_is_the_distance_of_the_rebuilt_profile(target: float) -> None:
    """The relative L2 distance between the combined and the requested continuous profiles,
    against a quadrature of the profiles themselves (not of their closed-form products)."""
    steps = [s for s in range(EVERY, STEPS + 1, EVERY) for _ in STORED]
    gammas = [std_to_exp(s) for _ in range(EVERY, STEPS + 1, EVERY) for s in STORED]
    x = solve_weights(steps, gammas, STEPS, std_to_exp(target))
    tau = np.linspace(0, STEPS, 2_000_001)
    terms = zip(x.tolist(), steps, gammas, strict=True)
    rebuilt = sum(xi * continuous_profile(tau, t, g) for xi, t, g in terms)
    wanted = continuous_profile(tau, STEPS, std_to_exp(target))
    expected = math.sqrt(np.trapezoid((rebuilt - wanted) ** 2, tau) / np.trapezoid(wanted**2, tau))
    got = profile_error(steps, gammas, STEPS, std_to_exp(target), x)
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert got > 0.001  # none of these is a stored profile


def test_a_stored_profile_has_no_profile_error() -> None:
    steps = [s for s in range(EVERY, STEPS + 1, EVERY) for _ in STORED]
    gammas = [std_to_exp(s) for _ in range(EVERY, STEPS + 1, EVERY) for s in STORED]
    x = solve_weights(steps, gammas, STEPS, std_to_exp(0.10))
    assert profile_error(steps, gammas, STEPS, std_to_exp(0.10), x) < 1e-6
