"""The denoiser and sampler core against closed forms, with no training.

For data x0 ~ N(M, S^2) the optimal denoiser is known: E[x0 | x] = M + S^2 / (S^2 + sigma^2)
(x / s - M), and the probability-flow ODE carries the start x_bar0 to M + S / sqrt(S^2 +
sigma0^2) (x_bar0 - M). Every sampler, on every family's process and grid, driven by that
denoiser must transport noise to the data Gaussian; Euler must converge at order 1, Heun and
DPM-Solver++(2M) at order 2. Each parameterisation must turn its ideal network output into
the clean image, and the core's Euler and DDIM must equal the flow ODE's Euler and Song et
al.'s eq. 12 written out on the families' own terms.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import fields

import pytest
import torch
from torch import Tensor

from genlab.denoising import denoisers
from genlab.denoising.denoisers import Denoiser
from genlab.denoising.grids import GRIDS, exponential, karras, noise_levels
from genlab.denoising.processes import (
    NoiseProcess,
    RectifiedFlow,
    VarianceExploding,
    VariancePreserving,
    strided_timesteps,
)
from genlab.denoising.samplers import SAMPLERS
from genlab.noise_schedules import alphas_cumprod, cosine_betas, linear_betas

M, S = 1.5, 0.5  # the data: N(M, S^2) per dimension
F64 = torch.float64

PROCESSES: dict[str, NoiseProcess] = {
    "flow": RectifiedFlow(),
    "vp_linear": VariancePreserving(alphas_cumprod(linear_betas(1000)).double().tolist()),
    "vp_cosine": VariancePreserving(alphas_cumprod(cosine_betas(1000)).double().tolist()),
    "edm": VarianceExploding(),
}
#: the options that make each sampler stochastic, where it has any
STOCHASTIC = {"ddim": {"eta": 1.0}, "ancestral": {}, "heun": {"s_churn": 10.0, "s_tmax": 50.0}}


class GaussianDenoiser:
    """The exact D of data N(M, S^2) on `process`, written so that it is finite at sigma =
    inf: S^2 / (s (S^2 + sigma^2)) = S^2 / (s S^2 + b sigma)."""

    def __init__(self, process: NoiseProcess) -> None:
        self.process = process
        self.calls = 0

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.calls += 1
        s, b = self.process.scale(sigma), self.process.noise_std(sigma)
        return M + S**2 / (s * S**2 + b * sigma) * x - S**2 / (S**2 + sigma**2) * M


def standard_normal(n: int, seed: int = 0) -> Tensor:
    """N(0, 1) draws moved to mean 0, std 1 exactly: a deterministic sampler is affine on
    Gaussian data, so its output moments then carry no Monte-Carlo error."""
    z = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return (z - z.mean()) / z.std()


def exact_transport(process: NoiseProcess, noise: Tensor, sigmas: Sequence[float]) -> Tensor:
    """Where the probability-flow ODE carries a sampler's start to at sigma = 0."""
    first = sigmas[0]
    if math.isinf(first):
        return M + S * noise
    x_bar = noise * process.start_std(first) / process.scale(first)
    return M + S / math.sqrt(S**2 + first**2) * (x_bar - M)


def run(
    name: str, process: NoiseProcess, noise: Tensor, sigmas: Sequence[float], **options
) -> Tensor:
    generator = torch.Generator().manual_seed(1)
    return SAMPLERS[name].function(
        GaussianDenoiser(process), noise, sigmas, generator=generator, **options
    )


# ---------------------------------------------------------------------------- transport


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("process", sorted(PROCESSES))
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_transports_noise_to_the_data_gaussian(
    name: str, process: str, grid: str
) -> None:
    # With its default options, at 200 steps: a deterministic sampler close to the exact ODE
    # map (first order within 0.08, second order 0.03: the steps from the cosine schedule's
    # sigma_max of 20,291 are the worst), ancestral in its moments (its first-order bias shrinks
    # the std by 0.04 at 100 steps: see the next test).
    pytest.importorskip("torchdiffeq") if name == "dopri5" else None
    p, z = PROCESSES[process], standard_normal(20_000)
    sigmas = noise_levels(p, grid, 200)
    x = (
        run(name, p, z, sigmas, rtol=1e-6, atol=1e-6)
        if name == "dopri5"
        else run(name, p, z, sigmas)
    )
    tolerance = {"euler": 0.08, "ddim": 0.08, "ancestral": 0.05}.get(name, 0.03)
    if name != "ancestral":
        assert (x - exact_transport(p, z, sigmas)).abs().max().item() < tolerance
    assert x.mean().item() == pytest.approx(M, abs=0.02)
    assert x.std().item() == pytest.approx(S, abs=tolerance)


@pytest.mark.parametrize("process", sorted(PROCESSES))
@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_samplers_reach_the_data_gaussian(name: str, process: str) -> None:
    # Fresh noise at every step still ends in N(M, S^2), 20,000 draws at 1,000 steps (their
    # first-order bias: std 0.464, 0.492, 0.501 at 100, 400, 1,600 steps for ancestral on EDM).
    p = PROCESSES[process]
    x = run(name, p, standard_normal(20_000), noise_levels(p, "karras", 1000), **STOCHASTIC[name])
    assert x.mean().item() == pytest.approx(M, abs=0.015)
    assert x.std().item() == pytest.approx(S, abs=0.015)


def ode_error(name: str, process: NoiseProcess, grid: str, steps: int) -> float:
    z = standard_normal(500)
    sigmas = noise_levels(process, grid, steps)
    return (run(name, process, z, sigmas) - exact_transport(process, z, sigmas)).abs().max().item()


@pytest.mark.parametrize(
    ("name", "order"), [("euler", 1), ("ddim", 1), ("heun", 2), ("dpmpp_2m", 2)]
)
@pytest.mark.parametrize(("process", "grid"), [("edm", "own"), ("flow", "own"), ("flow", "karras")])
def test_convergence_order(name: str, order: int, process: str, grid: str) -> None:
    # Global error C h^p: doubling the steps divides it by about 2^p (measured 1.98-2.00 for
    # first order; 3.3-4.2 for second order, the flow's own grid approaching 4 from below).
    errors = [ode_error(name, PROCESSES[process], grid, n) for n in (64, 128)]
    ratio = errors[0] / errors[1]
    assert (1.8 < ratio < 2.2) if order == 1 else (3.2 < ratio < 4.8), ratio


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_heun_is_no_worse_than_euler_at_few_steps(process: str, grid: str) -> None:
    # A second-order correction must not undo the first-order step: Heun's trapezoid in
    # sigma extrapolates past the denoiser's new estimate when a step divides sigma by more
    # than 2, and on the cosine schedule's own grid (first step 20,291 -> 1.75 at 4 steps) it
    # sent samples to 800 where Euler's error is 0.66.
    p = PROCESSES[process]
    for steps in (2, 3, 4, 6, 10):
        euler, heun = (ode_error(name, p, grid, steps) for name in ("euler", "heun"))
        assert heun <= euler, (steps, heun, euler)


def test_heun_with_an_infinite_cap_is_edms_algorithm_1() -> None:
    # Karras et al. 2022, Algorithm 1 written out (s = 1): the trapezoid over each step, an
    # Euler step to sigma = 0. On 4 steps of EDM's grid (sigma/sigma' up to 21) the default
    # cap binds and differs from it.
    p = PROCESSES["edm"]
    denoiser, z = GaussianDenoiser(p), standard_normal(500)
    sigmas = noise_levels(p, "own", 4)
    x = z * sigmas[0]
    for sigma, sigma_next in itertools.pairwise(sigmas):
        slope = (x - denoiser(x, sigma)) / sigma
        x_next = x + (sigma_next - sigma) * slope
        if sigma_next > 0:
            slope_next = (x_next - denoiser(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (slope + slope_next) / 2
        x = x_next
    assert torch.allclose(run("heun", p, z, sigmas, correction_cap=math.inf), x, atol=1e-9)
    assert not torch.allclose(run("heun", p, z, sigmas), x, atol=1e-3)


# --------------------------------------------------------------------------- grids


@pytest.mark.parametrize("steps", [1, 2, 18, 100])
def test_karras_grid_hits_both_ends_and_decreases(steps: int) -> None:
    sigmas = karras(0.002, 80.0, steps, 7.0)
    assert len(sigmas) == steps + 1 and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(80.0, rel=1e-12)
    if steps > 1:
        assert sigmas[-2] == pytest.approx(0.002, rel=1e-9)
        # eq. 5: uniform in sigma^(1/rho)
        roots = torch.tensor(sigmas[:-1], dtype=F64) ** (1 / 7)
        assert torch.allclose(roots.diff(), roots.diff()[0].expand(steps - 1))
    assert all(a > b for a, b in itertools.pairwise(sigmas))


def test_exponential_grid_is_uniform_in_log_sigma() -> None:
    sigmas = exponential(0.01, 100.0, 5)
    assert [math.log10(s) for s in sigmas[:-1]] == pytest.approx([2, 1, 0, -1, -2])
    assert sigmas[-1] == 0.0


@pytest.mark.parametrize("process", sorted(PROCESSES))
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_every_grid_decreases_to_zero(process: str, grid: str) -> None:
    sigmas = noise_levels(PROCESSES[process], grid, 7)
    assert len(sigmas) == 8 and sigmas[-1] == 0.0
    assert all(isinstance(s, float) for s in sigmas)  # Python numbers: torch.export unrolls them
    assert all(a > b for a, b in itertools.pairwise(sigmas))


def test_own_grids_are_the_families_training_grids() -> None:
    assert PROCESSES["flow"].own_grid(4) == [math.inf, 3.0, 1.0, pytest.approx(1 / 3), 0.0]
    vp = PROCESSES["vp_linear"]
    assert vp.own_grid(5)[:-1] == [vp.sigmas[t] for t in (999, 749, 500, 250, 0)]
    assert strided_timesteps(10, 10) == list(range(9, -1, -1))
    assert PROCESSES["edm"].own_grid(18) == karras(0.002, 80.0, 18, 7.0)


def test_vp_timesteps_interpolate_in_log_sigma() -> None:
    vp = PROCESSES["vp_linear"]
    on_grid = torch.tensor([vp.sigmas[0], vp.sigmas[500], vp.sigmas[999]], dtype=F64)
    assert vp.timestep(on_grid).tolist() == [0.0, 500.0, 999.0]
    between = math.exp((vp.log_sigmas[10] + vp.log_sigmas[11]) / 2)
    assert vp.timestep(torch.tensor([between], dtype=F64)).item() == pytest.approx(10.5)


# ------------------------------------------------------------------ parameterisations


def ideal_outputs(x0: Tensor, noise: Tensor, s: Tensor, b: Tensor, sigma: Tensor) -> dict:
    """What each parameterisation's network should output, in its paper's terms."""
    sd = 0.5
    x_bar = x0 + sigma * noise
    c_skip, c_out = sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()
    return {
        "epsilon": noise,  # Ho et al. 2020
        "clean": x0,
        "v": s * noise - b * x0,  # Salimans & Ho 2022
        "velocity": x0 - noise,  # rectified flow's x1 - x0
        "edm": (x0 - c_skip * x_bar) / c_out,  # Karras et al. 2022, eq. 8's target
    }


PARAMETERISATIONS = {
    "epsilon": ("vp_linear", denoisers.epsilon),
    "clean": ("vp_cosine", denoisers.clean),
    "v": ("vp_linear", denoisers.v),
    "velocity": ("flow", denoisers.velocity),
    "edm": ("edm", denoisers.edm(0.5)),
}


@pytest.mark.parametrize("name", sorted(PARAMETERISATIONS))
def test_each_parameterisation_turns_its_ideal_output_into_the_clean_image(name: str) -> None:
    process_name, parameterisation = PARAMETERISATIONS[name]
    process = PROCESSES[process_name]
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(6, 1, 4, 4, generator=g) * 2 - 1, torch.randn(6, 1, 4, 4, generator=g)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 40.0, 80.0], dtype=F64)
    s, b = process.scale(sigma), process.noise_std(sigma)
    view = (-1, 1, 1, 1)
    x = (s.view(view) * x0 + b.view(view) * noise).float()
    ideal = ideal_outputs(x0.double(), noise.double(), s.view(view), b.view(view), sigma.view(view))
    expected_input = x * (1 / (sigma**2 + 0.25).sqrt().float().view(view) if name == "edm" else 1)
    seen = []

    def network(inputs: Tensor, time: Tensor) -> Tensor:
        seen.append((inputs, time))
        return ideal[name].float()

    denoised = Denoiser(network, process, parameterisation)(x, sigma)
    assert (denoised - x0).abs().max().item() < 1e-5  # rounding only
    assert torch.allclose(seen[0][0], expected_input)
    assert torch.allclose(seen[0][1], process.network_time(sigma).float())


# ------------------------------------------------- the core against the families' own terms


def tiny_network(seed: int = 0) -> torch.nn.Module:
    from tests.helpers.tiny import tiny_unet

    torch.manual_seed(seed)
    return tiny_unet(0).eval()


def test_core_euler_is_euler_on_the_flow_ode() -> None:
    # x <- x + (t1 - t0) v(x, t0) from t = 0 to 1, as flow matching was sampled before the core.
    net, steps = tiny_network(), 10
    noise = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x, times = noise.clone(), torch.linspace(0, 1, steps + 1)
    with torch.no_grad():
        for t0, t1 in itertools.pairwise(times):
            x = x + (t1 - t0) * net(x, t0.expand(4))
        core = SAMPLERS["euler"].function(
            Denoiser(lambda x, t: net(x, t), RectifiedFlow(), denoisers.velocity),
            noise,
            RectifiedFlow().own_grid(steps),
        )
    assert (core - x).abs().max().item() < 1e-5


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_core_ddim_is_song_et_al_eq_12_on_alpha_bar(eta: float) -> None:
    # x' = sqrt(abar') x0 + sqrt(1 - abar' - sigma^2) eps + sigma z, x0 = (x - sqrt(1 - abar)
    # eps) / sqrt(abar) clipped to [-1, 1] and eps recomputed from it, as DDPM sampled before.
    net, abar = tiny_network(), alphas_cumprod(cosine_betas(1000)).double()
    process = VariancePreserving(abar.tolist())
    timesteps = strided_timesteps(1000, 8)
    noise = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x, g = noise.clone(), torch.Generator().manual_seed(1)
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            a, a_next = (
                abar[t],
                (abar[timesteps[i + 1]] if i + 1 < len(timesteps) else abar.new_ones(())),
            )
            eps = net(x, torch.full((4,), t / 1000))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).float().clamp(-1, 1)
            eps = ((x - a.sqrt() * x0) / (1 - a).sqrt()).float()
            sigma = eta * ((1 - a_next) / (1 - a) * (1 - a / a_next)).sqrt()
            x = (a_next.sqrt() * x0 + (1 - a_next - sigma**2).clamp(min=0).sqrt() * eps).float()
            if sigma > 0:
                x = x + (sigma * torch.randn(x.shape, generator=g)).float()
        denoiser = Denoiser(lambda x, t: net(x, t), process, denoisers.epsilon, clip=True)
        core = SAMPLERS["ddim"].function(
            denoiser,
            noise,
            process.own_grid(8),
            generator=torch.Generator().manual_seed(1),
            eta=eta,
        )
    assert (core - x).abs().max().item() < 1e-5


# ----------------------------------------------------------------------- declarations


@pytest.mark.parametrize("process", sorted(PROCESSES))
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_nfe_counted_equals_nfe_declared(name: str, process: str) -> None:
    pytest.importorskip("torchdiffeq") if name == "dopri5" else None
    p = PROCESSES[process]
    for grid, steps in (("own", 1), ("own", 5), ("karras", 6)):
        denoiser = GaussianDenoiser(p)
        sigmas = noise_levels(p, grid, steps)
        SAMPLERS[name].function(denoiser, standard_normal(3), sigmas)
        declared = SAMPLERS[name].nfe(sigmas)
        assert declared is None if name == "dopri5" else declared == denoiser.calls


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_determinism_is_declared_truthfully(name: str) -> None:
    spec, p = SAMPLERS[name], PROCESSES["edm"]
    options = spec.read_options(STOCHASTIC.get(name, {}))
    sigmas = noise_levels(p, "own", 5)
    draws = [
        SAMPLERS[name].function(
            GaussianDenoiser(p),
            standard_normal(8),
            sigmas,
            generator=torch.Generator().manual_seed(seed),
            **vars(options),
        )
        for seed in (0, 0, 1)
    ]
    assert torch.equal(draws[0], draws[1])  # the generator's noise: reproducible
    assert spec.stochastic(options) == (not torch.equal(draws[0], draws[2]))
    # every default is deterministic but ancestral's, which has no deterministic setting
    assert spec.stochastic(spec.options()) == (name == "ancestral")


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_option_declares_its_check_and_meaning(name: str) -> None:
    for f in fields(SAMPLERS[name].options):
        assert f.metadata["check"](f.default), f.name  # the default passes its own check
        assert f.metadata["requirement"] and f.metadata["doc"]


def test_dopri5_without_torchdiffeq_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchdiffeq", None)  # makes `import torchdiffeq` fail
    p = PROCESSES["flow"]
    with pytest.raises(ImportError, match="dopri5 needs torchdiffeq: pip install torchdiffeq"):
        SAMPLERS["dopri5"].function(GaussianDenoiser(p), standard_normal(2), p.own_grid(3))


def test_heun_churns_only_within_its_sigma_window() -> None:
    # EDM's S_tmin/S_tmax: no level of the grid inside the window, no noise, Algorithm 1's path.
    p, z = PROCESSES["edm"], standard_normal(50)
    sigmas = noise_levels(p, "own", 8)
    plain = run("heun", p, z, sigmas)
    assert torch.equal(run("heun", p, z, sigmas, s_churn=40.0, s_tmin=100.0), plain)
    assert torch.equal(run("heun", p, z, sigmas, s_churn=40.0, s_tmax=1e-3), plain)
    assert not torch.equal(run("heun", p, z, sigmas, s_churn=40.0, s_tmax=1.0), plain)
