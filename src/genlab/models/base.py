"""The model-family contract: what every generative model in genlab provides.

A family (GAN, VAE, flow matching, diffusion) states the shape of its noise, maps noise
(and labels) to images with `sample`, and trains through `train_iteration`; everything
downstream (metrics, sample grids, genlab-sample, genlab-eval, export, the benchmarks)
calls only these and the optional capabilities of `genlab.models.capabilities`, never a
model class.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from genlab.compat import lightning_writes_logs_this_step
from genlab.errors import ConfigError
from genlab.models.optimizers import OptimizerFactory, SchedulerFactory
from genlab.nets.layers import evaluating

#: how a training iteration asks for one optimiser update: `step(index, loss)` steps the
#: optimiser `index` on `loss()`, a closure the caller runs inside that optimiser's scope
#: (Lightning's toggled optimiser in `training_step`, a bare loop in the benchmarks)
Step = Callable[[int, Callable[[], Tensor]], None]


class GenerativeModule(pl.LightningModule):
    """What a model family provides, and the one `generate` every consumer calls.

    A family states `noise_shape` (a latent vector or an image), maps noise and labels to
    images with `sample` (with its `sampling` options: steps, solver, guidance), declares
    its networks' start-up `probes` (run by `genlab.preflight`) and computes its updates in
    `train_iteration`. Consumers get images in [-1, 1] from `generate(n)` whatever the family.
    """

    #: the metric `optimized_metric=auto` ranks checkpoints by when no metrics are on
    default_monitor: str | None = None
    #: attribute names of the model's networks (what `compile` compiles)
    network_names: tuple[str, ...] = ()
    #: the losses a training step backpropagates, in order (how NanGuard names a bad one)
    loss_names: tuple[str, ...] = ()

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 0 or num_classes == 1:
            raise ConfigError(
                f"model.num_classes must be 0 (unconditional) or >= 2, got {num_classes}"
            )
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.compile_networks = compile
        self.channels_last = channels_last

    def setup(self, stage: str) -> None:
        """Check a conditional model's classes against the data; opt-in speed-ups for fitting.

        `compile`: torch.compile each network in place (`nn.Module.compile`), so the
        state dict keeps its keys. `channels_last`: NHWC weights on CUDA, where convolutions
        under mixed precision run faster in that layout; on a CPU it is left off.
        """
        if stage != "fit":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:  # after its setup: an image folder knows its classes then
            self.check_classes(getattr(datamodule, "num_classes", None))
        self.speed_up(self.trainer.strategy.root_device)

    def speed_up(self, device: torch.device) -> None:
        """Apply the opt-in speed-ups (`channels_last`, `compile`) for training on `device`."""
        if self.channels_last and device.type == "cuda":
            self.to(memory_format=torch.channels_last)
        if self.compile_networks:
            for name in self.network_names:
                getattr(self, name).compile()

    def logs_this_step(self) -> bool:
        """Whether Lightning will write this training step's scalars to the loggers.

        Lightning writes step scalars every `trainer.log_every_n_steps` batches and drops
        the others, yet every `self.log` call costs about a millisecond of its bookkeeping
        (a tenth of a small VAE's step on a CPU), so the models log only on written steps.
        This reads Lightning's own rule; should its internals change, every step logs.
        """
        trainer = self._trainer
        if trainer is None or trainer.fast_dev_run:
            return True
        try:
            return lightning_writes_logs_this_step(trainer)
        except (AttributeError, NotImplementedError):
            return True

    @property
    def conditional(self) -> bool:
        """Whether the model generates images of a chosen class (`num_classes` > 0)."""
        return self.num_classes > 0

    @property
    @abstractmethod
    def noise_shape(self) -> tuple[int, ...]:
        """The shape of one image's noise: (latent_dim,) for a latent vector, (C, H, W) for
        a family that starts from an image of noise."""

    @abstractmethod
    def sample(
        self,
        noise: Tensor,
        labels: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **sampling: Any,
    ) -> Tensor:
        """Images in [-1, 1] (before clamping) made from `noise` and, for a conditional
        model, `labels`; `sampling` holds every option of `sampling_settings`. A stochastic
        sampler draws its noise with `generator` (a seeded CPU generator: any device, same
        images)."""

    @abstractmethod
    def probes(self, image_shape: tuple[int, int, int]) -> list:
        """The networks' start-up checks for data of `image_shape` (`genlab.preflight.Probe`)."""

    @property
    def default_sampling(self) -> dict[str, Any]:
        """The sampling options `generate` uses unless told otherwise; empty for a family
        that generates in one pass."""
        return {}

    @property
    def validation_sampling(self) -> dict[str, Any]:
        """The options training-time samples (FID, grids) use: a cheaper budget than
        `default_sampling` where sampling takes many network evaluations."""
        return {}

    def sampling_settings(self, **sampling: Any) -> dict[str, Any]:
        """`default_sampling` updated with `sampling` (an option the family lacks: ConfigError)."""
        unknown = sorted(set(sampling) - set(self.default_sampling))
        if unknown:
            allowed = ", ".join(sorted(self.default_sampling)) or "none: it generates in one pass"
            raise ConfigError(
                f"{type(self).__name__} has no sampling option {', '.join(unknown)} "
                f"(its options: {allowed})"
            )
        return {**self.default_sampling, **sampling}

    def deterministic_sampling(self, **sampling: Any) -> bool:
        """Whether `sample` is a function of its noise alone with these options (what an
        exported program must be)."""
        return True

    def function_evaluations(self, **sampling: Any) -> int | None:
        """Network evaluations per image that `generate` with these options costs (NFE;
        None where an adaptive solver has not sampled yet)."""
        return 1

    def sample_noise(
        self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """Draw n noises ~ N(0, I) of `noise_shape`. With a seeded CPU `generator` the draw is
        the same on any device. `labels` (the classes the noise will be sampled with) do not
        change the prior; a VAE's ex-post latent sampler reads them."""
        shape = (n, *self.noise_shape)
        if generator is None:
            return torch.randn(shape, device=self.device)
        return torch.randn(shape, generator=generator).to(self.device)

    def training_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """A one-objective family's loss on `batch` and the scalars it logs."""
        raise NotImplementedError(f"{type(self).__name__} overrides train_iteration instead")

    def train_iteration(self, batch: tuple[Tensor, Tensor], step: Step) -> dict[str, Any]:
        """One training iteration on `batch`, each update made by `step`; returns the scalars
        to log. The default: one objective and one optimiser (`training_loss`)."""
        scalars: dict[str, Any] = {}

        def loss() -> Tensor:
            value, logged = self.training_loss(batch)
            scalars.update(logged)
            return value

        step(0, loss)
        return scalars

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Lightning's automatic optimisation of `training_loss` (one optimiser)."""
        loss, scalars = self.training_loss(batch)
        if self.logs_this_step():
            self.log_dict(detached(scalars), batch_size=batch[0].shape[0])
        return loss

    def logged_metrics(self) -> frozenset[str]:
        """Every name the model's `self.log` calls write, as configured (the names that
        `optimized_metric` may rank checkpoints by)."""
        return frozenset()

    def check_net_classes(self, **nets: nn.Module) -> None:
        """Raise ConfigError unless every net is built for the model's `num_classes`.

        A net without a `num_classes` attribute is unconditional. Called by the models'
        constructors, so a mismatch fails before anything runs.
        """
        for name, net in nets.items():
            net_classes = getattr(net, "num_classes", 0)
            if net_classes != self.num_classes:
                raise ConfigError(
                    f"model.{name}.num_classes={net_classes} but model.num_classes="
                    f"{self.num_classes}; set them equal (a conditional model needs networks "
                    "that take labels; the net configs read ${model.num_classes})"
                )

    def check_classes(self, data_classes: int | None) -> None:
        """Raise ConfigError unless a conditional model's classes are the data's labels."""
        if not self.conditional:
            return
        if data_classes is None:
            raise ConfigError(
                f"model.num_classes={self.num_classes} needs labelled data, but this dataset "
                "has no labels; use model.num_classes=0 or a labelled dataset"
            )
        if data_classes != self.num_classes:
            raise ConfigError(
                f"model.num_classes={self.num_classes} but the data has {data_classes} classes; "
                f"set model.num_classes={data_classes}"
            )

    def optimizer_steps_for(self, iterations: int) -> int:
        """Lightning's `global_step` after `iterations` training batches.

        With manual optimisation every `optimizer.step()` advances `global_step`, so a
        GAN counts several per batch; `trainer.max_steps` in genlab's configs means
        training iterations and is converted with this method.
        """
        return iterations

    def batch_labels(self, labels: Tensor) -> Tensor | None:
        """A batch's labels for a conditional model; None for an unconditional one."""
        return labels if self.conditional else None

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor | None:
        """Class labels drawn uniformly for a conditional model (None for an unconditional one)."""
        if not self.conditional:
            return None
        if generator is None:
            return torch.randint(self.num_classes, (n,), device=self.device)
        return torch.randint(self.num_classes, (n,), generator=generator).to(self.device)

    def check_labels(self, labels: Tensor | None, n: int) -> Tensor | None:
        """`labels` on the model's device, or a ConfigError saying why they do not fit."""
        if labels is None:
            return None
        if not self.conditional:
            raise ConfigError(
                "labels were given but the model is unconditional (model.num_classes=0); "
                "train with a conditional experiment, e.g. experiment=cgan_mnist or cvae_mnist"
            )
        if labels.shape != (n,):
            raise ConfigError(
                f"expected {n} labels (one per image), got shape {tuple(labels.shape)}"
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ConfigError(
                f"labels must lie in 0..{self.num_classes - 1}, got {labels.min()}..{labels.max()}"
            )
        return labels.to(self.device)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        batch_size: int = 500,
        on_batch: Callable[[int], None] | None = None,
        **sampling: Any,
    ) -> Tensor:
        """`n` images in [-1, 1], made in eval mode in batches of `batch_size` with the
        family's sampling options (`default_sampling` updated with `sampling`).

        A conditional model makes images of the given `labels` (one per image), or of
        labels drawn uniformly when none are given: what FID compares with the real data.
        `on_batch` is called with each batch's size once it is made (a progress bar).
        The images are float32 even under mixed-precision autocast, where a network's last
        layer returns bf16 or fp16: the metrics and files downstream read full precision.
        """
        settings = self.sampling_settings(**sampling)
        labels = self.check_labels(labels, n)
        with evaluating(self):
            if labels is None:
                labels = self.sample_labels(n, generator)
            noise = self.sample_noise(n, generator, labels)
            chunks = noise.split(batch_size)
            label_chunks = labels.split(batch_size) if labels is not None else [None] * len(chunks)
            images = []
            for chunk, chunk_labels in zip(chunks, label_chunks, strict=True):
                images.append(self.sample(chunk, chunk_labels, generator=generator, **settings))
                if on_batch is not None:
                    on_batch(len(chunk))
        return torch.cat(images).float().clamp_(-1.0, 1.0)


class LatentVariableModule(GenerativeModule):
    """A family whose noise is a latent vector z ~ N(0, I), decoded in one pass (GAN, VAE)."""

    def __init__(self, latent_dim: int, optimizer: OptimizerFactory, **options: Any) -> None:
        super().__init__(optimizer, **options)
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be a positive integer, got {latent_dim}")
        self.latent_dim = latent_dim

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    @abstractmethod
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Map latents (and, for a conditional model, class labels) to images in [-1, 1]."""

    def sample(
        self,
        noise: Tensor,
        labels: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **sampling: Any,
    ) -> Tensor:
        return self.decode(noise, labels)


def detached(scalars: dict[str, Any]) -> dict[str, Any]:
    """Logged scalars without their graphs."""
    return {k: v.detach() if isinstance(v, Tensor) else v for k, v in scalars.items()}


def conditioned(net: nn.Module, inputs: Tensor, labels: Tensor | None) -> Tensor:
    """`net(inputs)`, or `net(inputs, labels)` for a class-conditional network."""
    return net(inputs) if labels is None else net(inputs, labels)
