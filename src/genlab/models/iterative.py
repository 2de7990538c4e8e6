"""What flow matching, diffusion and EDM share: a network of (x, t, labels) trained by
regression and sampled from image-shaped noise in many network evaluations.

The families differ in their objective (`objective`), their noise process and what their
network predicts (`process`, `parameterisation`: together one denoiser D(x, sigma), see
`genlab.denoising`). Sampling is common: any sampler of `genlab.denoising.samplers` on any
time grid drives any family's denoiser. This base also holds noise of the image's shape, the
one optimiser, label dropout and classifier-free guidance (Ho & Salimans 2022), the sampling
settings with their validation, the NFE count, and a validation loss on fixed draws.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from genlab.denoising.denoisers import Denoiser, Parameterisation
from genlab.denoising.grids import noise_levels
from genlab.denoising.processes import NoiseProcess
from genlab.denoising.samplers import SAMPLERS, SamplerSpec
from genlab.errors import ConfigError
from genlab.models.base import GenerativeModule
from genlab.models.optimizers import (
    OptimizerFactory,
    SchedulerFactory,
    build_optimizer,
    with_schedulers,
)
from genlab.preflight import Probe, makes_images
from genlab.sampling import COMMON_DEFAULTS, MAX_STEPS, SamplingRules, guided

#: seeds the draws (times, noise) of the validation loss: the same every epoch
VALIDATION_SEED = 1234
#: samplers renamed since a checkpoint was written: its stored setting still samples
RENAMED_SOLVERS = {"ddpm": "ancestral"}


def plain_dict(options: Any) -> dict[str, Any]:
    """A config node (or None) as a plain dict."""
    if options is None:
        return {}
    if isinstance(options, DictConfig):
        return OmegaConf.to_container(options, resolve=True)  # type: ignore[return-value]
    return dict(options)


class IterativeModule(GenerativeModule):
    """A network `net(x, t, labels)` sampled by a solver from noise of the image's shape.

    Logs `train/loss` and `val/loss` (the objective on the validation images, with the same
    seeded times and noise every epoch, so that epochs compare). A conditional model drops
    each training label with probability `label_dropout` (it becomes the null label), which
    trains the unconditional model that guidance needs within the same network.
    """

    default_monitor = "val/loss"
    network_names = ("net",)
    loss_names = ("train/loss",)
    #: the family's noise process and what its network predicts (set by each family)
    process: NoiseProcess
    parameterisation: Parameterisation

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampling: dict[str, Any] | None = None,
        validation_sampling: dict[str, Any] | None = None,
        clip_denoised: bool = False,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, compile, channels_last, num_classes)
        if channels < 1 or image_size < 1:
            raise ConfigError(
                f"model.channels and model.image_size must be >= 1, got {channels}, {image_size}"
            )
        if not 0.0 <= label_dropout < 1.0:
            raise ConfigError(f"model.label_dropout must lie in [0, 1), got {label_dropout}")
        self.check_net_classes(net=net)
        self.net = net
        self.image_shape = (channels, image_size, image_size)
        self.label_dropout = label_dropout if self.conditional else 0.0
        self.clip_denoised = clip_denoised
        self._default_sampling = renamed({**COMMON_DEFAULTS, **plain_dict(sampling)})
        self.check_sampling(self._default_sampling, "model.sampling")
        self._validation_sampling = renamed(plain_dict(validation_sampling))
        merged = {**self._default_sampling, **self._validation_sampling}
        self.check_sampling(merged, "model.validation_sampling")
        #: network evaluations per image of the last `sample` call (what an adaptive solver took)
        self.last_function_evaluations: int | None = None

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return self.image_shape

    @property
    def default_sampling(self) -> dict[str, Any]:
        return dict(self._default_sampling)

    @property
    def validation_sampling(self) -> dict[str, Any]:
        return dict(self._validation_sampling)

    def sampling_settings(self, **sampling: Any) -> dict[str, Any]:
        """`default_sampling` updated with `sampling`, checked (named `sampling.*`, as
        genlab-sample, -eval and -export take them) when anything was given."""
        settings = renamed({**self.default_sampling, **sampling})
        if sampling:
            self.check_sampling(settings, "sampling")
        return settings

    def check_sampling(self, settings: dict[str, Any], key: str) -> None:
        """Raise ConfigError, naming `key`.<option>, unless every option of `settings` is
        one this model can sample with (see `sampling_rules`)."""
        self.sampling_rules.check(settings, key)

    @property
    def sampling_rules(self) -> SamplingRules:
        """What this model accepts as sampling options."""
        limit, why = self.max_sampling_steps
        return SamplingRules(type(self).__name__, limit, why, self.conditional)

    @property
    def max_sampling_steps(self) -> tuple[int, str]:
        """The most steps a sampler may take, and why that many."""
        return MAX_STEPS, "more would take hours per batch and add nothing"

    def probes(self, image_shape: tuple[int, int, int]) -> list[Probe]:
        hint = "set model.channels/model.image_size and the net's to data.channels/data.image_size"
        return [
            Probe(
                "the network",
                self.net,
                (torch.zeros(2, *self.noise_shape), torch.full((2,), 0.5)),
                f"noise of shape {self.noise_shape} and times",
                hint,
                makes_images("the network", image_shape, hint),
            )
        ]

    def configure_optimizers(self):
        return with_schedulers(
            self.scheduler_factory, [build_optimizer(self.optimizer_factory, self.parameters())]
        )

    def logged_metrics(self) -> frozenset[str]:
        return frozenset({"train/loss", "val/loss"})

    def dropped_labels(self, labels: Tensor | None) -> Tensor | None:
        """Labels with each replaced by the null label with probability `label_dropout`."""
        if labels is None or not self.label_dropout:
            return labels
        drop = torch.rand(labels.shape, device=labels.device) < self.label_dropout
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    @abstractmethod
    def objective(
        self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The regression loss on images `x` (mean over images and pixels), its random
        draws from `generator` when one is given."""

    def training_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        x, labels = batch[0], self.batch_labels(batch[1])
        loss = self.objective(x, self.dropped_labels(labels))
        return loss, {"train/loss": loss}

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, labels = batch[0], self.batch_labels(batch[1])
        generator = torch.Generator().manual_seed(VALIDATION_SEED + batch_idx)
        loss = self.objective(x, labels, generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=x.shape[0])

    def denoiser(self, labels: Tensor | None = None, guidance: float = 1.0) -> Denoiser:
        """This model as D(x, sigma) (guided by `guidance` when given `labels`)."""
        network = guided(self.net, labels, guidance, self.num_classes)
        return Denoiser(network, self.process, self.parameterisation, self.clip_denoised)

    def sampler(self, settings: dict[str, Any]) -> tuple[SamplerSpec, list[float], dict[str, Any]]:
        """The sampler `settings` name, its grid of noise levels, and its options."""
        spec = SAMPLERS[settings["solver"]]
        sigmas = noise_levels(self.process, settings["grid"], settings["steps"], settings["rho"])
        return spec, sigmas, vars(spec.read_options(settings))

    def sample(
        self,
        noise: Tensor,
        labels: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **sampling: Any,
    ) -> Tensor:
        settings = renamed({**self.default_sampling, **sampling})
        spec, sigmas, options = self.sampler(settings)
        denoiser = self.denoiser(labels, float(settings["guidance"]))
        try:
            images = spec.function(denoiser, noise, sigmas, generator=generator, **options)
        except ImportError as err:  # dopri5 without torchdiffeq
            raise ConfigError(f"{err} (or sample with sampling.solver=heun)") from None
        self.last_function_evaluations = denoiser.calls * self.passes_per_call(labels, settings)
        return images

    def passes_per_call(self, labels: Tensor | None, settings: dict[str, Any]) -> int:
        """Network passes per image in one guided call: 2 when guidance mixes two."""
        return 2 if labels is not None and settings["guidance"] not in (0, 1) else 1

    def function_evaluations(self, **sampling: Any) -> int | None:
        """Network passes per image (both passes of a guided step count); for an adaptive
        sampler, those of the last `sample` call."""
        settings = self.sampling_settings(**sampling)
        spec, sigmas, _ = self.sampler(settings)
        calls = spec.nfe(sigmas)
        if calls is None:
            return self.last_function_evaluations
        labels = torch.zeros(1) if self.conditional else None
        return calls * self.passes_per_call(labels, settings)

    def deterministic_sampling(self, **sampling: Any) -> bool:
        settings = self.sampling_settings(**sampling)
        spec = SAMPLERS[settings["solver"]]
        return not spec.stochastic(spec.read_options(settings))


def renamed(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with a solver's old name replaced by its new one."""
    solver = settings.get("solver")
    if isinstance(solver, str) and solver in RENAMED_SOLVERS:
        return {**settings, "solver": RENAMED_SOLVERS[solver]}
    return settings
