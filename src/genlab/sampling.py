"""The sampling options of an iterative model (`model.sampling`, `sampling.*` of
genlab-sample, -eval and -export) and classifier-free guidance.

The settings are one flat dict: `solver` (a sampler of `genlab.denoising.samplers`),
`steps`, `guidance`, `grid` and `rho` (the time grid, `genlab.denoising.grids`), and the
options any sampler declares (`eta`, `s_churn`, `rtol`, ...; a sampler reads its own and
ignores the others'). `SamplingRules` checks them where they are given, so that a value no
sampler can use is one line naming the key instead of a hang or black images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genlab.denoising.grids import GRIDS
from genlab.denoising.samplers import SAMPLERS, finite_number, option_fields
from genlab.errors import ConfigError

#: the most steps a sampler may take: the error stopped shrinking long before, and a
#: million steps would run for hours per batch with nothing to show
MAX_STEPS = 10_000

#: the settings every sampler shares, with their defaults (solver and steps have none)
COMMON_DEFAULTS: dict[str, Any] = {"guidance": 1.0, "grid": "own", "rho": 7.0}

#: each common valued option's check, and what an error says its value must do
COMMON_REQUIREMENTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "guidance": (finite_number(0.0), "be a finite number >= 0"),
    "rho": (finite_number(0.0, strict=True), "be a finite number > 0"),
}


def guided(
    net: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    labels: Tensor | None,
    guidance: float,
    null_label: int,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Classifier-free guidance (Ho & Salimans 2022): a `network(x, t)` from a conditional
    `net(x, t, labels)`, computing uncond + w (cond - uncond) on the network's output (any
    parameterisation: D is affine in it, so guiding it guides D).

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

    def network(x: Tensor, t: Tensor) -> Tensor:
        both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        n = x.shape[0]  # halves by slicing: chunk(2) would stop torch.export's free batch size
        cond, uncond = both[:n], both[n:]
        return uncond + guidance * (cond - uncond)

    return network


@dataclass(frozen=True)
class SamplingRules:
    """The sampling settings one model accepts."""

    owner: str  # the model's class, as errors name it
    max_steps: int
    max_steps_why: str
    conditional: bool

    @property
    def options(self) -> tuple[str, ...]:
        return ("solver", "steps", *COMMON_DEFAULTS, *option_fields())

    def check(self, settings: Mapping[str, Any], key: str) -> None:
        """Raise ConfigError on the first setting that cannot work, named as `key`.<option>
        (the prefix the command line typed: `model.sampling`, `sampling`)."""
        for name in settings:
            if name not in self.options:
                raise ConfigError(
                    f"{key}.{name}: {self.owner} has no sampling option {name} "
                    f"(its options: {', '.join(self.options)})"
                )
        solver = settings.get("solver")
        if solver not in SAMPLERS:
            raise ConfigError(
                f"{key}.solver={solver!r} is not a sampler; choose one of {', '.join(SAMPLERS)}"
            )
        if settings.get("grid", "own") not in GRIDS:
            raise ConfigError(
                f"{key}.grid={settings['grid']!r} is not a time grid; choose one of "
                f"{', '.join(GRIDS)}"
            )
        self.check_steps(settings.get("steps"), key)
        requirements = {
            **COMMON_REQUIREMENTS,
            **{
                name: (f.metadata["check"], f.metadata["requirement"])
                for name, f in option_fields().items()
            },
        }
        for name, (check, requirement) in requirements.items():
            if name in settings and not check(settings[name]):
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
