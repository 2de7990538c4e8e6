"""VAEModule: a variational autoencoder (Kingma & Welling, ICLR 2014) and its variants.

encoder(x) -> (mu, logvar); z = mu + exp(logvar / 2) * eps; decoder(z) -> pixel
parameters. Objectives (`objective`), per image in nats:
- `elbo`: -ELBO(x) = E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I)), one sample of z;
  beta > 1 is the beta-VAE (Higgins et al., ICLR 2017), `kl_warmup_steps` ramps beta
  linearly from 0 (Bowman et al. 2016);
- `iwae`: -L_k, L_k = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)] with k = `iw_samples`
  (Burda, Grosse & Salakhutdinov, ICLR 2016), a tighter bound on log p(x).
With `num_classes` > 0 it is the conditional VAE (Sohn, Lee & Yan, NeurIPS 2015):
q(z|x, y), p(x|z, y), p(z) = N(0, I); both networks take the label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from genlab.errors import ConfigError
from genlab.losses import bernoulli_nll, gaussian_kl, gaussian_nll, iwae_bound
from genlab.models.base import LatentVariableModule, conditioned
from genlab.models.likelihood import likelihood_report
from genlab.models.optimizers import (
    OptimizerFactory,
    SchedulerFactory,
    build_optimizer,
    with_schedulers,
)
from genlab.preflight import Probe, image_probe, latent_probe, makes_images

LIKELIHOODS = ("bernoulli", "gaussian")
OBJECTIVES = ("elbo", "iwae")

#: draws n latents for the decoder to read with `labels` (None: unconditional or drawn), with
#: an optional seeded CPU generator, e.g. a fitted LatentGMM
LatentDraw = Callable[[int, Tensor | None, torch.Generator | None], Tensor]


class VAEModule(LatentVariableModule):
    """Logs `train/loss` (the objective's bound, negated: nats per image), and for `elbo`
    `train/recon`, `train/kl`, `train/beta`; `val/elbo`, `val/recon`, `val/kl`, `val/loss`
    (-val/elbo for `elbo`, -L_k for `iwae`, which also logs it as `val/iwae_bound` = L_k).

    Likelihoods: `bernoulli` treats pixel intensities in [0, 1] as probabilities
    (binary cross-entropy summed over pixels); `gaussian` is N(x; decoder(z),
    sigma^2) on the [-1, 1] pixel scale with a fixed `gaussian_sigma`.

    `latent_draw`, when set (genlab-sample/genlab-eval `latents=gmm`), replaces the
    prior in `generate`; it is not part of the checkpoint.
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
        objective: str = "elbo",
        iw_samples: int = 5,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        gaussian_sigma: float = 0.1,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        channels_last: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__(
            latent_dim, optimizer, scheduler=scheduler, compile=compile,
            channels_last=channels_last, num_classes=num_classes,
        )  # fmt: skip
        for key, value, choices in (
            ("likelihood", likelihood, LIKELIHOODS),
            ("objective", objective, OBJECTIVES),
        ):
            if value not in choices:
                raise ConfigError(
                    f"model.{key}={value!r} is unknown; choose one of {', '.join(choices)}"
                )
        if beta < 0 or kl_warmup_steps < 0 or gaussian_sigma <= 0 or iw_samples < 1:
            raise ConfigError(
                "model.beta and model.kl_warmup_steps must be >= 0, model.gaussian_sigma > 0 and "
                f"model.iw_samples >= 1; got {beta}, {kl_warmup_steps}, {gaussian_sigma}, "
                f"{iw_samples}"
            )
        if objective == "iwae" and (beta != 1.0 or kl_warmup_steps):
            raise ConfigError(
                f"model.beta={beta} and model.kl_warmup_steps={kl_warmup_steps} weight the ELBO's "
                "KL term, which the iwae objective does not have; keep beta=1, kl_warmup_steps=0"
            )
        self.check_net_classes(encoder=encoder, decoder=decoder)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.objective = objective
        self.iw_samples = iw_samples
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps
        self.gaussian_sigma = gaussian_sigma
        self.latent_draw: LatentDraw | None = None

    def sample_noise(
        self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """z from `latent_draw` (given the labels) when one is set, else from the prior."""
        if self.latent_draw is None:
            return super().sample_noise(n, generator, labels)
        return self.latent_draw(n, labels, generator).to(self.device)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The mean image of p(x|z[, y]), mapped to [-1, 1]."""
        out = conditioned(self.decoder, z, labels)
        return torch.sigmoid(out) * 2.0 - 1.0 if self.likelihood == "bernoulli" else out

    def encode(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """The posterior mean of q(z|x[, y]): the latent a reconstruction decodes."""
        return conditioned(self.encoder, images, labels)[0]

    def log_likelihood(
        self, loader: torch.utils.data.DataLoader, k: int, device: torch.device
    ) -> dict[str, float]:
        """The test ELBO and the k-sample importance-weighted bound of `loader`'s images."""
        return likelihood_report(self, loader, k, device)

    def probes(self, image_shape: tuple[int, int, int]) -> list[Probe]:
        def latents_of_model_size(out: tuple[Tensor, Tensor]) -> str | None:
            if out[0].shape[1] == self.latent_dim:
                return None
            return (
                f"the encoder makes latents of size {out[0].shape[1]} but model.latent_dim="
                f"{self.latent_dim}; set them equal"
            )

        hint = "change the decoder's image_size/channels or data.image_size/data.channels"
        return [
            image_probe("the encoder", self.encoder, image_shape, latents_of_model_size),
            latent_probe(
                "the decoder", self.decoder, self.latent_dim,
                makes_images("the decoder", image_shape, hint),
            ),
        ]  # fmt: skip

    def posterior(self, x: Tensor, labels: Tensor | None = None) -> Normal:
        """q(z|x[, y]) as a float32 Normal, whatever the autocast precision.

        Without torch.distributions' argument checks: they cost a host sync per call, and
        a diverged encoder's NaN would raise a long ValueError in the forward pass before
        the NaN guard could name the loss (`callbacks.nan_guard`: stop, skip, or null to go on).
        """
        mu, logvar = conditioned(self.encoder, x, labels)
        return Normal(mu.float(), torch.exp(0.5 * logvar.float()), validate_args=False)

    def negative_elbo_terms(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-image reconstruction NLL and analytic KL (nats), one reparameterised sample."""
        q = self.posterior(x, labels)
        recon = self.reconstruction_nll(conditioned(self.decoder, q.rsample(), labels), x)
        return recon, gaussian_kl(q.loc, 2.0 * q.scale.log())

    def log_weights(
        self, x: Tensor, posterior: Normal, k: int, labels: Tensor | None = None
    ) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) of k reparameterised z_i: (k, B).

        Differentiable (the iwae objective trains on it); `iw_nll` calls it without gradients.
        """
        z = posterior.rsample((k,))  # (k, B, D)
        log_q = posterior.log_prob(z).sum(-1)
        log_prior = Normal(0.0, 1.0, validate_args=False).log_prob(z).sum(-1)
        repeated_labels = labels.repeat(k) if labels is not None else None  # row i*B + b: label b
        decoded = conditioned(self.decoder, z.flatten(0, 1), repeated_labels)
        repeated = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
        log_px = -self.reconstruction_nll(decoded, repeated).view(k, -1)
        return log_px + log_prior - log_q

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

    def logged_metrics(self) -> frozenset[str]:
        names = {"train/loss", "val/elbo", "val/recon", "val/kl", "val/loss"}
        if self.objective == "iwae":
            names.add("val/iwae_bound")
        else:
            names |= {"train/recon", "train/kl", "train/beta"}
        return frozenset(names)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optimizer_factory, self.parameters())
        return with_schedulers(self.scheduler_factory, [optimizer])

    def training_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """The objective's loss per image, averaged over the batch (the KL weighted by
        `kl_weight` for `elbo`); the logged `train/loss` is the unweighted bound."""
        x, labels = batch[0], self.batch_labels(batch[1])
        if self.objective == "iwae":
            log_w = self.log_weights(x, self.posterior(x, labels), self.iw_samples, labels)
            loss = -iwae_bound(log_w).mean()
            return loss, {"train/loss": loss}
        recon, kl = self.negative_elbo_terms(x, labels)
        weight = self.kl_weight()
        scalars = {
            "train/loss": (recon + kl).mean(),
            "train/recon": recon.mean(),
            "train/kl": kl.mean(),
            "train/beta": weight,
        }
        return (recon + weight * kl).mean(), scalars

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, labels = batch[0], self.batch_labels(batch[1])
        recon, kl = self.negative_elbo_terms(x, labels)
        neg_elbo = (recon + kl).mean()
        scalars = {"val/elbo": -neg_elbo, "val/recon": recon.mean(), "val/kl": kl.mean()}
        if self.objective == "iwae":
            log_w = self.log_weights(x, self.posterior(x, labels), self.iw_samples, labels)
            scalars["val/iwae_bound"] = iwae_bound(log_w).mean()
            scalars["val/loss"] = -scalars["val/iwae_bound"]
        else:
            scalars["val/loss"] = neg_elbo
        self.log_dict(scalars, prog_bar=True, batch_size=x.shape[0])
