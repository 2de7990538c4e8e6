"""GANModule: adversarial training of a generator G and a discriminator D.

Manual optimisation (Lightning 2 requires it for two optimisers), with
`manual_backward` and `toggled_optimizer` so that mixed-precision loss scaling
and DDP gradient sync go through Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from genlab.augment import DiffAugment
from genlab.errors import ConfigError
from genlab.losses import gan_loss, gradient_penalty, r1_penalty
from genlab.models.base import LatentVariableModule, Step, conditioned, detached
from genlab.models.optimizers import (
    OptimizerFactory,
    SchedulerFactory,
    build_optimizer,
    with_schedulers,
)
from genlab.preflight import Probe, image_probe, latent_probe, makes_images


class GANModule(LatentVariableModule):
    """Trains D on every batch and G on every `n_critic`-th batch.

    Logs `train/d_loss`, `train/g_loss` and the mean discriminator probabilities
    `train/d_real` = E[sigmoid(D(x))], `train/d_fake` = E[sigmoid(D(G(z)))]; with
    a penalty on, also `train/gp` or `train/r1` (unweighted; d_loss excludes them).

    Options: `gradient_penalty` (lambda of WGAN-GP), `r1_gamma` (gamma of R1: adds
    gamma/2 * E||grad D(x)||^2), `augment` (DiffAugment operations on every image D
    sees), `num_classes` (class-conditional G and D; the nets must take labels).
    The penalties run in float32 even under mixed precision: a second-order
    gradient in float16 would underflow without its own loss scaling.
    """

    network_names = ("generator", "discriminator")
    loss_names = ("train/d_loss", "train/g_loss")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer: OptimizerFactory,
        latent_dim: int = 100,
        loss: str = "nonsaturating",
        lr_g: float | None = None,
        lr_d: float | None = None,
        n_critic: int = 1,
        gradient_penalty: float = 0.0,
        r1_gamma: float = 0.0,
        augment: Sequence[str] = (),
        num_classes: int = 0,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(
            latent_dim, optimizer, scheduler=scheduler, compile=compile,
            channels_last=channels_last, num_classes=num_classes,
        )  # fmt: skip
        net_latent = getattr(generator, "latent_dim", latent_dim)
        if net_latent != latent_dim:
            raise ConfigError(
                f"model.generator.latent_dim={net_latent} differs from "
                f"model.latent_dim={latent_dim}; set them equal"
            )
        if n_critic < 1:
            raise ConfigError(f"model.n_critic must be >= 1, got {n_critic}")
        if gradient_penalty < 0 or r1_gamma < 0:
            raise ConfigError(
                "model.gradient_penalty and model.r1_gamma must be >= 0, "
                f"got {gradient_penalty} and {r1_gamma}"
            )
        self.check_net_classes(generator=generator, discriminator=discriminator)
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.loss = gan_loss(loss)
        self.lr_g, self.lr_d = lr_g, lr_d
        self.n_critic = n_critic
        self.gp_weight, self.r1_gamma = gradient_penalty, r1_gamma
        self.augment = DiffAugment(augment) if augment else None
        # Batches seen, kept in checkpoints so that a resumed run continues the
        # n_critic cycle where it stopped. A Python int: no host sync per step.
        self.iteration = 0

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return conditioned(self.generator, z, labels)

    def probes(self, image_shape: tuple[int, int, int]) -> list[Probe]:
        def one_logit_per_image(logits: Tensor) -> str | None:
            if logits.shape == (2,):
                return None
            return (
                "the discriminator must return one logit per image, got shape "
                f"{tuple(logits.shape)} for a batch of 2"
            )

        hint = "change the generator (its strides or image_size) or data.image_size/data.channels"
        return [
            latent_probe(
                "the generator", self.generator, self.latent_dim,
                makes_images("the generator", image_shape, hint),
            ),
            image_probe("the discriminator", self.discriminator, image_shape, one_logit_per_image),
        ]  # fmt: skip

    def optimizer_steps_for(self, iterations: int) -> int:
        """One D step per batch plus one G step every `n_critic` batches."""
        if iterations < 0:
            return iterations
        return iterations + iterations // self.n_critic

    def configure_optimizers(self):
        opt_g = build_optimizer(self.optimizer_factory, self.generator.parameters(), lr=self.lr_g)
        opt_d = build_optimizer(
            self.optimizer_factory, self.discriminator.parameters(), lr=self.lr_d
        )
        return with_schedulers(self.scheduler_factory, [opt_g, opt_d])

    def logged_metrics(self) -> frozenset[str]:
        names = {"train/d_loss", "train/d_real", "train/d_fake", "train/g_loss"}
        names |= {"val/d_loss", "val/d_real", "val/d_fake"}
        if self.gp_weight:
            names.add("train/gp")
        if self.r1_gamma:
            names.add("train/r1")
        return frozenset(names)

    def critic(self, images: Tensor, labels: Tensor | None, augment: bool = True) -> Tensor:
        """D's logits for `images`, augmented first when DiffAugment is on and `augment`."""
        if augment and self.augment is not None:
            images = self.augment(images)
        return conditioned(self.discriminator, images, labels)

    def penalties(self, real: Tensor, fake: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        """The enabled regularisers of D, unweighted, computed in float32."""
        terms: dict[str, Tensor] = {}
        if not (self.gp_weight or self.r1_gamma):
            return terms
        with torch.autocast(self.device.type, enabled=False):
            real, fake = real.float(), fake.float()
            if self.gp_weight:  # interpolates carry the real images' labels
                terms["train/gp"] = gradient_penalty(lambda x: self.critic(x, labels), real, fake)
            if self.r1_gamma:
                terms["train/r1"] = r1_penalty(lambda x: self.critic(x, labels), real)
        return terms

    def train_iteration(self, batch: tuple[Tensor, Tensor], step: Step) -> dict[str, Tensor]:
        """One D update and, on every `n_critic`-th batch, one G update on the same fakes."""
        real, labels = batch[0], self.batch_labels(batch[1])
        fake_labels = self.sample_labels(real.shape[0])
        update_g = (self.iteration + 1) % self.n_critic == 0

        # One generator pass serves both updates; it keeps a graph only when G learns.
        with torch.set_grad_enabled(update_g):
            fake = conditioned(self.generator, self.sample_noise(real.shape[0]), fake_labels)

        scalars: dict[str, Tensor] = {}

        def discriminator_loss() -> Tensor:
            real_logits = self.critic(real, labels)
            fake_logits = self.critic(fake.detach(), fake_labels)
            d_loss = self.loss.discriminator(real_logits, fake_logits)
            penalties = self.penalties(real, fake, labels)
            scalars.update(
                {
                    "train/d_loss": d_loss,
                    "train/d_real": torch.sigmoid(real_logits.detach()).mean(),
                    "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),
                    **penalties,
                }
            )
            d_total = d_loss
            if "train/gp" in penalties:
                d_total = d_total + self.gp_weight * penalties["train/gp"]
            if "train/r1" in penalties:
                d_total = d_total + 0.5 * self.r1_gamma * penalties["train/r1"]
            return d_total

        def generator_loss() -> Tensor:
            scalars["train/g_loss"] = self.loss.generator(self.critic(fake, fake_labels))
            return scalars["train/g_loss"]

        step(1, discriminator_loss)
        if update_g:
            step(0, generator_loss)
        self.iteration += 1
        return scalars

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        optimizers = self.optimizers()

        def step(index: int, loss: Callable[[], Tensor]) -> None:
            optimizer = optimizers[index]
            with self.toggled_optimizer(optimizer):
                value = loss()
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(value)
                optimizer.step()

        scalars = self.train_iteration(batch, step)
        if self.logs_this_step():
            self.log_dict(detached(scalars), batch_size=batch[0].shape[0])

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, labels = batch[0], self.batch_labels(batch[1])
        fake_labels = self.sample_labels(real.shape[0])
        fake = conditioned(self.generator, self.sample_noise(real.shape[0]), fake_labels)
        real_logits = self.critic(real, labels, augment=False)
        fake_logits = self.critic(fake, fake_labels, augment=False)
        self.log_dict(
            {
                "val/d_loss": self.loss.discriminator(real_logits, fake_logits),
                "val/d_real": torch.sigmoid(real_logits).mean(),
                "val/d_fake": torch.sigmoid(fake_logits).mean(),
            },
            batch_size=real.shape[0],
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_iteration"] = self.iteration

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.iteration = checkpoint.get("gan_iteration", 0)
