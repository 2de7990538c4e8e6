"""Validation metrics are their documented definitions, whatever the training weights.

A beta-VAE trains on recon + beta * KL (with beta ramped by the KL warm-up), but its
`val/elbo` is the ELBO: -(recon + KL). A GAN trains D with penalties and DiffAugment on, but
`val/d_loss` is the loss alone on the raw images. Each test computes the definition by hand
from the networks, with the same random draws, and compares with what the model logs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Normal

from genlab.models import GANModule, VAEModule
from tests.helpers.tiny import LATENT, loader, tiny_gan, tiny_vae

SEED = 7


def logged_validation(model: GANModule | VAEModule, batch: tuple[Tensor, Tensor]) -> dict:
    """What one `validation_step` on `batch` logs, drawn from the global RNG seeded at SEED."""
    logged: dict[str, Tensor] = {}
    model.log_dict = lambda values, **_: logged.update(values)  # type: ignore[method-assign]
    model.eval()
    torch.manual_seed(SEED)
    with torch.no_grad():
        model.validation_step(batch, 0)
    return {name: float(value) for name, value in logged.items()}


def batch() -> tuple[Tensor, Tensor]:
    return next(iter(loader(n=16, batch_size=16)))


def negative_elbo_by_hand(model: VAEModule, x: Tensor) -> tuple[Tensor, Tensor]:
    """Bernoulli reconstruction NLL and analytic KL per image, one reparameterised sample."""
    mu, logvar = model.encoder(x)
    z = Normal(mu, torch.exp(0.5 * logvar)).rsample()
    targets = (x + 1) / 2
    recon = F.binary_cross_entropy_with_logits(model.decoder(z), targets, reduction="none")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)
    return recon.flatten(1).sum(dim=1), kl


def test_val_elbo_of_a_beta_vae_in_warm_up_is_the_elbo() -> None:
    x, labels = batch()
    model = tiny_vae(beta=4.0, kl_warmup_steps=100)  # trains on recon + 0.04 * KL at step 0
    assert model.kl_weight() == 4.0 / 100
    logged = logged_validation(model, (x, labels))
    torch.manual_seed(SEED)
    with torch.no_grad():
        recon, kl = negative_elbo_by_hand(model, x)
    expected = {
        "val/recon": recon.mean(),
        "val/kl": kl.mean(),
        "val/elbo": -(recon + kl).mean(),
        "val/loss": (recon + kl).mean(),
    }
    for name, value in expected.items():
        assert abs(logged[name] - float(value)) < 1e-3, name


def test_val_metrics_of_the_same_weights_do_not_depend_on_the_training_objective() -> None:
    x, labels = batch()
    plain = tiny_vae()
    weighted = tiny_vae(beta=0.25, kl_warmup_steps=10)
    weighted.load_state_dict(plain.state_dict())
    assert logged_validation(weighted, (x, labels)) == logged_validation(plain, (x, labels))


def test_val_iwae_bound_is_the_log_mean_importance_weight() -> None:
    x, labels = batch()
    k = 4
    model = tiny_vae(objective="iwae", iw_samples=k)
    logged = logged_validation(model, (x, labels))
    torch.manual_seed(SEED)
    with torch.no_grad():
        recon, kl = negative_elbo_by_hand(model, x)  # the ELBO's draw comes first
        mu, logvar = model.encoder(x)
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = q.rsample((k,))  # (k, B, D)
        logits = model.decoder(z.flatten(0, 1))
        targets = ((x + 1) / 2).repeat(k, 1, 1, 1)
        log_px = -F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        log_px = log_px.flatten(1).sum(dim=1).view(k, -1)
        log_w = log_px + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        bound = (torch.logsumexp(log_w, dim=0) - torch.log(torch.tensor(float(k)))).mean()
    assert abs(logged["val/iwae_bound"] - float(bound)) < 1e-3
    assert logged["val/loss"] == -logged["val/iwae_bound"]
    assert abs(logged["val/elbo"] + float((recon + kl).mean())) < 1e-3


def test_val_d_loss_is_the_loss_on_raw_images_without_penalties() -> None:
    x, labels = batch()
    model = tiny_gan(gradient_penalty=10.0, r1_gamma=5.0, augment=["translation", "cutout"])
    logged = logged_validation(model, (x, labels))
    torch.manual_seed(SEED)
    with torch.no_grad():
        fake = model.generator(torch.randn(len(x), LATENT))
        real_logits, fake_logits = model.discriminator(x), model.discriminator(fake)
    expected = {  # the non-saturating loss: -log D(x) - log(1 - D(G(z)))
        "val/d_loss": F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean(),
        "val/d_real": torch.sigmoid(real_logits).mean(),
        "val/d_fake": torch.sigmoid(fake_logits).mean(),
    }
    assert logged.keys() == expected.keys()
    for name, value in expected.items():
        assert abs(logged[name] - float(value)) < 1e-5, name
