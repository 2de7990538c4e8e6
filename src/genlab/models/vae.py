"""VAEModule: a variational autoencoder (Kingma & Welling, ICLR 2014).

encoder(x) -> (mu, logvar); z = mu + exp(logvar / 2) * eps; decoder(z) -> pixel
parameters. The loss is the negative ELBO per image in nats,
    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)),
estimated with one sample of z. `beta` weights the KL term (Higgins et al. 2017)
and `kl_warmup_steps` ramps that weight linearly from 0 (Bowman et al. 2016).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.losses import bernoulli_nll, gaussian_kl, gaussian_nll
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

LIKELIHOODS = ("bernoulli", "gaussian")


class VAEModule(GenerativeModule):
    """Logs `train/loss` (= -ELBO per image, nats), `train/recon`, `train/kl`, `train/beta`,
    and `val/elbo`, `val/loss` (= -val/elbo), `val/recon`, `val/kl`.

    Likelihoods: `bernoulli` treats pixel intensities in [0, 1] as probabilities
    (binary cross-entropy summed over pixels); `gaussian` is N(x; decoder(z),
    sigma^2) on the [-1, 1] pixel scale with a fixed `gaussian_sigma`.
    """

    default_monitor = "val/loss"
    network_names = ("encoder", "decoder")
    loss_names = ("train/loss",)

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: OptimizerFactory,
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        gaussian_sigma: float = 0.1,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(latent_dim, optimizer, scheduler, compile, channels_last)
        if likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"model.likelihood={likelihood!r} is unknown; "
                f"choose one of {', '.join(LIKELIHOODS)}"
            )
        if beta < 0 or kl_warmup_steps < 0 or gaussian_sigma <= 0:
            raise ConfigError(
                "model.beta and model.kl_warmup_steps must be >= 0 and model.gaussian_sigma > 0, "
                f"got {beta}, {kl_warmup_steps}, {gaussian_sigma}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps
        self.gaussian_sigma = gaussian_sigma

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The mean image of p(x|z), mapped to [-1, 1]."""
        out = conditioned(self.decoder, z, labels)
        return torch.sigmoid(out) * 2.0 - 1.0 if self.likelihood == "bernoulli" else out

    def check_fits(self, image_shape: tuple[int, int, int]) -> None:
        mu, _ = dry_run_on_images("the encoder", self.encoder, image_shape)
        if mu.shape[1] != self.latent_dim:
            raise ConfigError(
                f"the encoder makes latents of size {mu.shape[1]} but model.latent_dim="
                f"{self.latent_dim}; set them equal"
            )
        check_output_shape(
            "the decoder",
            dry_run_on_latents("the decoder", self.decoder, self.latent_dim),
            image_shape,
            "change the decoder's image_size/channels or data.image_size/data.channels",
        )

    def negative_elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-image reconstruction NLL and KL (nats), one reparameterised sample."""
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = self.reconstruction_nll(self.decoder(z), x)
        return recon, gaussian_kl(mu.float(), logvar.float())

    def reconstruction_nll(self, decoder_out: Tensor, x: Tensor) -> Tensor:
        """-log p(x|z) per image (nats), in float32 whatever the autocast precision."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(decoder_out.float(), (x.float() + 1.0) / 2.0)
        return gaussian_nll(decoder_out.float(), x.float(), self.gaussian_sigma)

    def kl_weight(self) -> float:
        """beta, ramped linearly over the first `kl_warmup_steps` steps."""
        if self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, (self.global_step + 1) / self.kl_warmup_steps)

    def configure_optimizers(self):
        return self.with_schedulers([self.make_optimizer(self.parameters())])

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, _ = batch
        recon, kl = self.negative_elbo_terms(x)
        weight = self.kl_weight()
        if self.logs_this_step():
            self.log_dict(
                {
                    "train/loss": (recon + kl).mean().detach(),
                    "train/recon": recon.mean().detach(),
                    "train/kl": kl.mean().detach(),
                    "train/beta": weight,
                },
                prog_bar=True,
                batch_size=x.shape[0],
            )
        return (recon + weight * kl).mean()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, _ = batch
        recon, kl = self.negative_elbo_terms(x)
        neg_elbo = (recon + kl).mean()
        self.log_dict(
            {
                "val/elbo": -neg_elbo,
                "val/loss": neg_elbo,
                "val/recon": recon.mean(),
                "val/kl": kl.mean(),
            },
            prog_bar=True,
            batch_size=x.shape[0],
        )
