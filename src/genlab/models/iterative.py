"""What flow matching and diffusion share: a network of (x, t, labels) trained by regression
and sampled by integrating from image-shaped noise in many network evaluations.

The two families differ in their objective (`objective`) and in how a sampler walks from
noise to data (`integrate`); this base holds the rest: noise of the image's shape, the one
optimiser, label dropout and classifier-free guidance (Ho & Salimans 2022), the sampling
options with their validation, the NFE count, and a validation loss on fixed draws.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.models.base import GenerativeModule
from genlab.models.optimizers import (
    OptimizerFactory,
    SchedulerFactory,
    build_optimizer,
    with_schedulers,
)
from genlab.preflight import Probe, makes_images
from genlab.sampling import MAX_STEPS, Model, SamplingRules, counting, guided

#: seeds the draws (times, noise) of the validation loss: the same every epoch
VALIDATION_SEED = 1234


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
    #: the solvers this family samples with (see `genlab.sampling`)
    solvers: frozenset[str] = frozenset()
    #: sampling options the family takes beside solver, steps and guidance, with their
    #: defaults (a checkpoint written before an option existed samples with its default)
    sampling_defaults: ClassVar[Mapping[str, Any]] = {}

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
        self._default_sampling = {
            "guidance": 1.0,
            **self.sampling_defaults,
            **plain_dict(sampling),
        }
        self.check_sampling(self._default_sampling, "model.sampling")
        self._validation_sampling = plain_dict(validation_sampling)
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
        settings = {**self.default_sampling, **sampling}
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
        return SamplingRules(type(self).__name__, self.solvers, self.sampling_defaults, limit,
                             why, self.conditional)  # fmt: skip

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

    @abstractmethod
    def integrate(
        self, model: Model, noise: Tensor, generator: torch.Generator | None, **settings: Any
    ) -> Tensor:
        """Images from `noise` by the family's solver walking the learned `model(x, t)`."""

    def training_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        x, labels = batch[0], self.batch_labels(batch[1])
        loss = self.objective(x, self.dropped_labels(labels))
        return loss, {"train/loss": loss}

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, labels = batch[0], self.batch_labels(batch[1])
        generator = torch.Generator().manual_seed(VALIDATION_SEED + batch_idx)
        loss = self.objective(x, labels, generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=x.shape[0])

    def network(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """The network at times `t` in [0, 1]; a family with discrete steps maps its own."""
        return self.net(x, t, labels)

    def sample(
        self,
        noise: Tensor,
        labels: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **sampling: Any,
    ) -> Tensor:
        settings = {**self.default_sampling, **sampling}
        model = guided(self.network, labels, float(settings["guidance"]), self.num_classes)
        counted = counting(model)
        images = self.integrate(counted, noise, generator, **settings)
        self.last_function_evaluations = counted.calls * self.passes_per_call(labels, settings)
        return images

    def passes_per_call(self, labels: Tensor | None, settings: dict[str, Any]) -> int:
        """Network passes per image in one guided call: 2 when guidance mixes two."""
        return 2 if labels is not None and settings["guidance"] not in (0, 1) else 1

    def function_evaluations(self, **sampling: Any) -> int | None:
        """Network passes per image (both passes of a guided step count); for an adaptive
        solver, those of the last `sample` call."""
        settings = self.sampling_settings(**sampling)
        calls = self.solver_calls(settings)
        if calls is None:
            return self.last_function_evaluations
        labels = torch.zeros(1) if self.conditional else None
        return calls * self.passes_per_call(labels, settings)

    @abstractmethod
    def solver_calls(self, settings: dict[str, Any]) -> int | None:
        """Calls of the model per image that the solver makes with `settings` (None: an
        adaptive solver, known only after sampling)."""
