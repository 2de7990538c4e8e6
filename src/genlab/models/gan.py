"""GANModule: adversarial training of a generator G and a discriminator D.

Manual optimisation (Lightning 2 requires it for two optimisers), with
`manual_backward` and `toggled_optimizer` so that mixed-precision loss scaling
and DDP gradient sync go through Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.losses import gan_loss
from genlab.models.base import (
    GenerativeModule,
    OptimizerFactory,
    SchedulerFactory,
    check_output_shape,
    conditioned,
    dry_run_on_images,
    dry_run_on_latents,
)
from genlab.utils.errors import ConfigError


class GANModule(GenerativeModule):
    """Trains D on every batch and G on every `n_critic`-th batch.

    Logs `train/d_loss`, `train/g_loss` and the mean discriminator probabilities
    `train/d_real` = E[sigmoid(D(x))], `train/d_fake` = E[sigmoid(D(G(z)))].
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
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(latent_dim, optimizer, scheduler, compile, channels_last)
        if n_critic < 1:
            raise ConfigError(f"model.n_critic must be >= 1, got {n_critic}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.loss = gan_loss(loss)
        self.lr_g, self.lr_d = lr_g, lr_d
        self.n_critic = n_critic
        # Batches seen, kept in checkpoints so that a resumed run continues the
        # n_critic cycle where it stopped. A Python int: no host sync per step.
        self.iteration = 0

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return conditioned(self.generator, z, labels)

    def check_fits(self, image_shape: tuple[int, int, int]) -> None:
        net_latent = getattr(self.generator, "latent_dim", self.latent_dim)
        if net_latent != self.latent_dim:
            raise ConfigError(
                f"model.generator.latent_dim={net_latent} differs from "
                f"model.latent_dim={self.latent_dim}; set them equal"
            )
        fake = dry_run_on_latents("the generator", self.generator, self.latent_dim)
        check_output_shape(
            "the generator",
            fake,
            image_shape,
            "change the generator (its strides or image_size) or data.image_size/data.channels",
        )
        logits = dry_run_on_images("the discriminator", self.discriminator, image_shape)
        if logits.shape != (2,):
            raise ConfigError(
                f"the discriminator must return one logit per image, got shape "
                f"{tuple(logits.shape)} for a batch of 2"
            )

    def optimizer_steps_for(self, iterations: int) -> int:
        """One D step per batch plus one G step every `n_critic` batches."""
        if iterations < 0:
            return iterations
        return iterations + iterations // self.n_critic

    def configure_optimizers(self):
        opt_g = self.make_optimizer(self.generator.parameters(), lr=self.lr_g)
        opt_d = self.make_optimizer(self.discriminator.parameters(), lr=self.lr_d)
        return self.with_schedulers([opt_g, opt_d])

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        update_g = (self.iteration + 1) % self.n_critic == 0

        # One generator pass serves both updates; it keeps a graph only when G learns.
        with torch.set_grad_enabled(update_g):
            fake = self.generator(self.sample_latent(real.shape[0]))

        with self.toggled_optimizer(opt_d):
            real_logits = self.discriminator(real)
            fake_logits = self.discriminator(fake.detach())
            d_loss = self.loss.discriminator(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()

        g_loss = None
        if update_g:
            with self.toggled_optimizer(opt_g):
                g_loss = self.loss.generator(self.discriminator(fake))
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)
                opt_g.step()

        self.iteration += 1
        if self.logs_this_step():
            metrics = {
                "train/d_loss": d_loss.detach(),
                "train/d_real": torch.sigmoid(real_logits.detach()).mean(),
                "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),
            }
            if g_loss is not None:
                metrics["train/g_loss"] = g_loss.detach()
            self.log_dict(metrics, prog_bar=True, batch_size=real.shape[0])

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(self.generator(self.sample_latent(real.shape[0])))
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
