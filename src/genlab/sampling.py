"""Samplers for flow-matching and diffusion models, all with one signature (after
k-diffusion's sampling.py): `sampler(model, x, times, *, generator=None, **options)`.

Flow (ODE) samplers, `euler`, `heun`, `dopri5`: `model(x, t)` is the velocity dx/dt at
time t, a float tensor of shape (N,); `times` increases from 0 (noise) to 1 (data), e.g.
`torch.linspace(0, 1, steps + 1)`.

Diffusion samplers, `ddim`, `ddpm` (epsilon prediction, Ho et al. 2020): `model(x, t)` is
the predicted noise at timestep t, a long tensor of shape (N,) of indices into
`alphas_cumprod` (length T); `times` decreases to 0, e.g. `torch.arange(T - 1, -1, -1)` for
the full chain or `ddim_timesteps(T, steps)` for a strided one. After the last timestep
comes abar = 1 (clean data), so both return the predicted x0 at their last step.

Noise is drawn on the CPU from `generator` and then moved to x's device, so a seed gives
the same samples on any device. The loops read `times` and the schedule as tensors, never
as Python numbers, so that `torch.export` can unroll a deterministic sampler into a
program (genlab-export).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.utils.numbers import is_number

Model = Callable[[Tensor, Tensor], Tensor]  # (x, t) -> velocity or predicted noise
Sampler = Callable[..., Tensor]  # (model, x, times, *, generator=None, **options) -> sample

#: the most steps a flow solver may take: its error stopped shrinking long before, and a
#: million steps would run for hours per batch with nothing to show
MAX_STEPS = 10_000


class CountingModel:
    """A model that counts its calls: the number of function evaluations (NFE), the cost
    measure of a sampler. Takes any arguments, so it wraps conditional networks too."""

    def __init__(self, model: Callable[..., Tensor]) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, *args: Tensor | None) -> Tensor:
        self.calls += 1
        return self.model(*args)


def counting(model: Callable[..., Tensor]) -> CountingModel:
    """`model` wrapped to count its calls in `.calls`."""
    return CountingModel(model)


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) of x's shape, drawn on the CPU from `generator` when one is given."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def batch_time(x: Tensor, t: float | Tensor) -> Tensor:
    """Time `t` for every image of the batch, as a float tensor of shape (N,)."""
    return torch.as_tensor(t, device=x.device).to(x.dtype).expand(x.shape[0])


def intervals(times: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """(t0, t1) of each step of a time grid, as 0-dim tensors."""
    for i in range(len(times) - 1):
        yield times[i], times[i + 1]


@torch.no_grad()
def euler(
    model: Model, x: Tensor, times: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """Euler's method, x <- x + h v(x, t): first order, global error O(h); NFE = steps."""
    for t0, t1 in intervals(times.to(x.device, x.dtype)):
        x = x + (t1 - t0) * model(x, batch_time(x, t0))
    return x


@torch.no_grad()
def heun(
    model: Model, x: Tensor, times: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """Heun's method (explicit trapezoid): an Euler predictor x' = x + h v(x, t0), then
    x <- x + h/2 [v(x, t0) + v(x', t1)]; second order, global error O(h^2).

    The correction runs on every interval, the last included (a velocity field is regular
    at t = 1, unlike EDM's denoiser at sigma = 0), so NFE = 2 * steps.
    """
    for t0, t1 in intervals(times.to(x.device, x.dtype)):
        h = t1 - t0
        d0 = model(x, batch_time(x, t0))
        d1 = model(x + h * d0, batch_time(x, t1))
        x = x + 0.5 * h * (d0 + d1)
    return x


@torch.no_grad()
def dopri5(
    model: Model,
    x: Tensor,
    times: Tensor,
    *,
    generator: torch.Generator | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """Dormand-Prince 5(4) with adaptive steps (torchdiffeq), from times[0] to times[-1]:
    the reference solution the fixed-step samplers are compared with. NFE is set by the
    tolerances; count it with `counting`."""
    try:
        from torchdiffeq import odeint
    except ImportError as err:
        raise ImportError("dopri5 needs torchdiffeq: pip install torchdiffeq") from err

    def velocity(t: Tensor, state: Tensor) -> Tensor:
        return model(state, batch_time(state, t))

    span = torch.stack([times[0], times[-1]]).to(device=x.device, dtype=x.dtype)
    return odeint(velocity, x, span, rtol=rtol, atol=atol, method="dopri5")[-1]


def ddim_timesteps(num_train_steps: int, steps: int) -> Tensor:
    """`steps` timesteps evenly spaced from T - 1 down to 0 (Song et al. 2021's strided
    schedule), decreasing, as a long tensor."""
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"steps must be in [1, {num_train_steps}], got {steps}")
    return torch.linspace(num_train_steps - 1, 0, steps).round().long()


def _pairs(times: Tensor, alphas_cumprod: Tensor) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(t, abar_t, abar_prev) for each timestep to visit, as 0-dim tensors (alpha_bar in
    float64); abar_prev is the alpha_bar of the next timestep in `times`, or 1 (clean data)
    after the last."""
    times = times.to(alphas_cumprod.device)
    abar = alphas_cumprod.double()[times]
    abar_prev = torch.cat([abar[1:], abar.new_ones(1)])
    for i in range(len(times)):
        yield times[i], abar[i], abar_prev[i]


def _denoise(
    model: Model, x: Tensor, t: Tensor, abar: Tensor, clip_denoised: bool
) -> tuple[Tensor, Tensor]:
    """(x0, eps) predicted at timestep t from x_t = sqrt(abar) x0 + sqrt(1 - abar) eps.

    With `clip_denoised`, x0 is clipped to [-1, 1], the data range, and eps recomputed
    from it, so that the pair still reproduces x_t.
    """
    eps = model(x, t.to(x.device).expand(x.shape[0]))
    x0 = ((x - (1.0 - abar).sqrt() * eps) / abar.sqrt()).to(x.dtype)
    if clip_denoised:
        x0 = x0.clamp(-1.0, 1.0)
        eps = ((x - abar.sqrt() * x0) / (1.0 - abar).sqrt()).to(x.dtype)
    return x0, eps


@torch.no_grad()
def ddim(
    model: Model,
    x: Tensor,
    times: Tensor,
    *,
    alphas_cumprod: Tensor,
    eta: float = 0.0,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Song, Meng & Ermon 2021 (DDIM), eq. 12:
    x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z, with
    sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev).

    eta = 0 is the deterministic DDIM, eta = 1 the DDPM posterior. NFE = len(times).
    """
    for t, abar, abar_prev in _pairs(times, alphas_cumprod):
        x0, eps = _denoise(model, x, t, abar, clip_denoised)
        sigma = eta * ((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)).sqrt()
        # clamp: 1 - abar_prev - sigma^2 >= 0 for eta <= 1, up to rounding.
        direction = (1.0 - abar_prev - sigma**2).clamp(min=0.0).sqrt()
        x = (abar_prev.sqrt() * x0 + direction * eps).to(x0.dtype)
        if eta > 0:
            x = x + (sigma * noise_like(x, generator)).to(x.dtype)
    return x


@torch.no_grad()
def ddpm(
    model: Model,
    x: Tensor,
    times: Tensor,
    *,
    alphas_cumprod: Tensor,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Ancestral sampling, Ho, Jain & Abbeel 2020, Algorithm 2, from the posterior
    q(x_prev | x_t, x0) of eq. 7 with the predicted x0: mean
    sqrt(abar_prev) beta / (1 - abar_t) x0 + sqrt(1 - beta) (1 - abar_prev) / (1 - abar_t) x_t,
    variance beta_tilde = (1 - abar_prev) / (1 - abar_t) beta.

    beta = 1 - abar_t / abar_prev, which is beta_t on the full chain and the beta of the
    whole stride on a strided one. The last step returns the mean (the predicted x0) with
    no noise. NFE = len(times).
    """
    steps = list(_pairs(times, alphas_cumprod))
    for i, (t, abar, abar_prev) in enumerate(steps):
        x0, _ = _denoise(model, x, t, abar, clip_denoised)
        beta = 1.0 - abar / abar_prev
        x = (
            abar_prev.sqrt() * beta / (1.0 - abar) * x0
            + (1.0 - beta).sqrt() * (1.0 - abar_prev) / (1.0 - abar) * x
        ).to(x0.dtype)
        if i + 1 < len(steps):
            std = ((1.0 - abar_prev) / (1.0 - abar) * beta).sqrt()
            x = x + (std * noise_like(x, generator)).to(x.dtype)
    return x


def guided(
    net: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    labels: Tensor | None,
    guidance: float,
    null_label: int,
) -> Model:
    """Classifier-free guidance (Ho & Salimans 2022): a `model(x, t)` for the samplers
    from a conditional `net(x, t, labels)`, computing uncond + w (cond - uncond).

    w = `guidance` is the (1 + w) of the paper's eq. 6: w = 0 is the unconditional model
    (the null label), w = 1 the conditional one, w > 1 guides past it. Both passes run as
    one forward of a doubled batch; when one suffices (no labels, w = 0 or w = 1) only
    that one runs. `labels=None` passes None, which a conditional net reads as the null
    label and an unconditional one accepts.
    """
    if labels is None:
        return lambda x, t: net(x, t, None)
    if guidance == 1:
        return lambda x, t: net(x, t, labels)
    null = torch.full_like(labels, null_label)
    if guidance == 0:
        return lambda x, t: net(x, t, null)

    def model(x: Tensor, t: Tensor) -> Tensor:
        both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        n = x.shape[0]  # halves by slicing: chunk(2) would stop torch.export's free batch size
        cond, uncond = both[:n], both[n:]
        return uncond + guidance * (cond - uncond)

    return model


SAMPLERS: dict[str, Sampler] = {
    "euler": euler,
    "heun": heun,
    "dopri5": dopri5,
    "ddim": ddim,
    "ddpm": ddpm,
}
FLOW_SAMPLERS = frozenset({"euler", "heun", "dopri5"})  # model(x, t) is a velocity
DIFFUSION_SAMPLERS = frozenset({"ddim", "ddpm"})  # model(x, t) is predicted noise


def finite_at_least(low: float, strict: bool = False) -> Callable[[Any], bool]:
    """A check for a finite number >= `low` (> `low` when `strict`): NaN and inf pass
    every comparison a solver makes, and come out as black images."""
    return lambda v: is_number(v) and math.isfinite(v) and (v > low if strict else v >= low)


#: each valued option's check, and what an error says its value must do
REQUIREMENTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "guidance": (finite_at_least(0.0), "be a finite number >= 0"),
    "eta": (lambda v: finite_at_least(0.0)(v) and v <= 1, "lie in [0, 1]"),
    "rtol": (finite_at_least(0.0, strict=True), "be a finite number > 0"),
    "atol": (finite_at_least(0.0, strict=True), "be a finite number > 0"),
}


@dataclass(frozen=True)
class SamplingRules:
    """The sampling options one model accepts, checked where they are given (the model's
    config at construction, `sampling.*` on genlab-sample, -eval and -export), so that a
    value no solver can use is one line naming the key instead of a hang or black images.

    `extra` holds the family's options beside solver, steps and guidance, with defaults.
    """

    owner: str  # the model's class, as errors name it
    solvers: frozenset[str]
    extra: Mapping[str, Any]
    max_steps: int
    max_steps_why: str
    conditional: bool

    @property
    def options(self) -> tuple[str, ...]:
        return ("solver", "steps", "guidance", *self.extra)

    def check(self, settings: Mapping[str, Any], key: str) -> None:
        """Raise ConfigError on the first option of `settings` that cannot work, named as
        `key`.<option> (the prefix the command line typed: `model.sampling`, `sampling`)."""
        for name in settings:
            if name not in self.options:
                raise ConfigError(
                    f"{key}.{name}: {self.owner} has no sampling option {name} "
                    f"(its options: {', '.join(self.options)})"
                )
        solver = settings.get("solver")
        if solver not in self.solvers:
            raise ConfigError(
                f"{key}.solver={solver!r} is not a {self.owner} solver; choose one of "
                f"{', '.join(sorted(self.solvers))}"
            )
        self.check_steps(settings.get("steps"), key)
        for name in self.options:
            check, requirement = REQUIREMENTS.get(name, (None, ""))
            if check is not None and name in settings and not check(settings[name]):
                raise ConfigError(f"{key}.{name} must {requirement}, got {settings[name]!r}")
        guidance = settings.get("guidance", 1)
        if guidance != 1 and not self.conditional:
            raise ConfigError(
                f"{key}.guidance={guidance!r} needs a class-conditional model "
                f"(model.num_classes > 0); this one is unconditional: drop {key}.guidance"
            )

    def check_steps(self, steps: Any, key: str) -> None:
        """Steps are a positive int within `max_steps`."""
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ConfigError(f"{key}.steps must be a positive integer, got {steps!r}")
        if steps > self.max_steps:
            raise ConfigError(
                f"{key}.steps must lie in 1..{self.max_steps} ({self.max_steps_why}), got {steps}"
            )


def get_sampler(name: str, family: str) -> Sampler:
    """Look up a sampler by its config name, for a `family` of "flow" or "diffusion"."""
    allowed = {"flow": FLOW_SAMPLERS, "diffusion": DIFFUSION_SAMPLERS}[family]
    if name not in allowed:
        choices = ", ".join(s for s in SAMPLERS if s in allowed)
        raise ConfigError(
            f"sampling.solver={name!r} is not a {family} sampler; choose one of {choices}"
        )
    return SAMPLERS[name]
