"""The start-up check of a model against its data, before anything trains.

Each family declares its networks' probes (`GenerativeModule.probes`): what one network is
fed and what it must return. This pass runs them all on two blank examples in eval mode
and turns a crash or a wrong output into one ConfigError that names the network, the
inputs it could not take and the config keys to change, so that a wrong shape fails in
a second rather than at the first batch (or, for a generator, at the first FID).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.nets.layers import evaluating

#: a probe's check of a network's output: an error message, or None when it fits
OutputCheck = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Probe:
    """One network's start-up check.

    `inputs` are two examples (labels are added for a conditional model), `what` describes
    them ("images of shape (1, 28, 28)"), `hint` says which config keys to change, and
    `check` judges the output.
    """

    name: str
    net: nn.Module
    inputs: tuple[Tensor, ...]
    what: str
    hint: str
    check: OutputCheck


def run_probe(probe: Probe, num_classes: int = 0) -> Any:
    """The network's output on the probe's inputs; a crash becomes a ConfigError."""
    labels = (torch.zeros(len(probe.inputs[0]), dtype=torch.long),) if num_classes else ()
    try:
        with torch.no_grad(), evaluating(probe.net):
            return probe.net(*probe.inputs, *labels)
    except TypeError as err:
        if not labels:
            raise
        raise ConfigError(
            f"{probe.name} does not take class labels ({err}); model.num_classes > 0 needs a "
            "conditional network (set its num_classes too, as the conditional experiments do)"
        ) from None
    except RuntimeError as err:
        first_line = str(err).splitlines()[0]
        raise ConfigError(
            f"{probe.name} cannot take {probe.what} ({first_line}); {probe.hint}"
        ) from None


def check_model_fits(model: Any, image_shape: tuple[int, int, int]) -> None:
    """Run every probe of `model` for data of `image_shape`; raise the first misfit."""
    for probe in model.probes(tuple(image_shape)):
        problem = probe.check(run_probe(probe, model.num_classes))
        if problem is not None:
            raise ConfigError(problem)


def makes_images(name: str, image_shape: tuple[int, int, int], hint: str) -> OutputCheck:
    """A check that a network's output has the data's image shape."""

    def check(output: Tensor) -> str | None:
        got = tuple(output.shape[1:])
        if got == tuple(image_shape):
            return None
        expected = tuple(image_shape)
        return f"{name} makes images of shape {got} but the data has shape {expected}; {hint}"

    return check


def image_probe(
    name: str, net: nn.Module, image_shape: tuple[int, int, int], check: OutputCheck
) -> Probe:
    """A probe feeding two blank images of the data's shape."""
    return Probe(
        name,
        net,
        (torch.zeros(2, *image_shape),),
        f"images of shape {tuple(image_shape)}",
        "make its channels/image_size match data.channels and data.image_size",
        check,
    )


def latent_probe(name: str, net: nn.Module, latent_dim: int, check: OutputCheck) -> Probe:
    """A probe feeding two latent vectors."""
    return Probe(
        name, net, (torch.zeros(2, latent_dim),), f"latents of size {latent_dim}",
        "check model.latent_dim", check,
    )  # fmt: skip
