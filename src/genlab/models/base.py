"""What every generative model in genlab shares: latents, `generate`, shape checks."""

from __future__ import annotations

from abc import abstractmethod

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from genlab.compat import lightning_writes_logs_this_step
from genlab.models.optimizers import OptimizerFactory, SchedulerFactory
from genlab.nets.layers import evaluating
from genlab.utils.errors import ConfigError


class GenerativeModule(pl.LightningModule):
    """Base class of GANModule and VAEModule.

    Every consumer of a model (metrics, sample grids, `genlab-sample`, `genlab-eval`)
    calls `generate(n)` and gets images in [-1, 1], whatever the model is.
    """

    #: the metric `optimized_metric=auto` ranks checkpoints by when no metrics are on
    default_monitor: str | None = None
    #: attribute names of the model's networks (what `compile` compiles)
    network_names: tuple[str, ...] = ()
    #: the losses a training step backpropagates, in order (how NanGuard names a bad one)
    loss_names: tuple[str, ...] = ()

    def __init__(
        self,
        latent_dim: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be a positive integer, got {latent_dim}")
        if num_classes < 0 or num_classes == 1:
            raise ConfigError(
                f"model.num_classes must be 0 (unconditional) or >= 2, got {num_classes}"
            )
        self.latent_dim = latent_dim
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

    @abstractmethod
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Map latents (and, for a conditional model, class labels) to images in [-1, 1]."""

    @abstractmethod
    def check_fits(self, image_shape: tuple[int, int, int]) -> None:
        """Raise ConfigError unless the networks take and make images of `image_shape`."""

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

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """Draw z ~ N(0, I). With a seeded CPU `generator` the draw is the same on any device.

        `labels` (the classes the latents will be decoded with) do not change the prior; a
        VAE's ex-post sampler reads them.
        """
        if generator is None:
            return torch.randn(n, self.latent_dim, device=self.device)
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

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
        generator: torch.Generator | None = None,
        batch_size: int = 500,
        labels: Tensor | None = None,
    ) -> Tensor:
        """`n` images in [-1, 1] from the prior, made in eval mode in batches of `batch_size`.

        A conditional model makes images of the given `labels` (one per image), or of
        labels drawn uniformly when none are given: what FID compares with the real data.
        """
        labels = self.check_labels(labels, n)
        with evaluating(self):
            if labels is None:
                labels = self.sample_labels(n, generator)
            z = self.sample_latent(n, generator, labels)
            chunks = z.split(batch_size)
            label_chunks = labels.split(batch_size) if labels is not None else [None] * len(chunks)
            images = [self.decode(zc, yc) for zc, yc in zip(chunks, label_chunks, strict=True)]
        return torch.cat(images).clamp_(-1.0, 1.0)


def check_output_shape(
    net_name: str, output: Tensor, expected: tuple[int, int, int], hint: str
) -> None:
    """Raise ConfigError naming both shapes when a network's image output is the wrong size."""
    got = tuple(output.shape[1:])
    if got != tuple(expected):
        raise ConfigError(
            f"{net_name} makes images of shape {got} but the data has shape {tuple(expected)}; "
            f"{hint}"
        )


def conditioned(net: nn.Module, inputs: Tensor, labels: Tensor | None) -> Tensor:
    """`net(inputs)`, or `net(inputs, labels)` for a class-conditional network."""
    return net(inputs) if labels is None else net(inputs, labels)


def dry_run(
    net_name: str,
    net: nn.Module,
    inputs: Tensor,
    what: str,
    hint: str,
    num_classes: int = 0,
) -> Tensor:
    """Run `net` on `inputs` in eval mode as a start-up check; a crash becomes a ConfigError.

    `what` describes the inputs ("images of shape (1, 28, 28)") and `hint` says
    which config keys to change. With `num_classes` > 0 the net also gets labels.
    """
    labels = torch.zeros(len(inputs), dtype=torch.long) if num_classes else None
    try:
        with torch.no_grad(), evaluating(net):
            return conditioned(net, inputs, labels)
    except TypeError as err:
        if labels is None:
            raise
        raise ConfigError(
            f"{net_name} does not take class labels ({err}); model.num_classes > 0 needs a "
            "conditional network (set its num_classes too, as the conditional experiments do)"
        ) from None
    except RuntimeError as err:
        first_line = str(err).splitlines()[0]
        raise ConfigError(f"{net_name} cannot take {what} ({first_line}); {hint}") from None


def dry_run_on_images(
    net_name: str, net: nn.Module, image_shape: tuple[int, int, int], num_classes: int = 0
) -> Tensor:
    """`dry_run` on two blank images of the data's shape."""
    return dry_run(
        net_name,
        net,
        torch.zeros(2, *image_shape),
        f"images of shape {tuple(image_shape)}",
        "make its channels/image_size match data.channels and data.image_size",
        num_classes,
    )


def dry_run_on_latents(
    net_name: str, net: nn.Module, latent_dim: int, num_classes: int = 0
) -> Tensor:
    """`dry_run` on two latent vectors."""
    return dry_run(
        net_name,
        net,
        torch.zeros(2, latent_dim),
        f"latents of size {latent_dim}",
        "check model.latent_dim",
        num_classes,
    )
