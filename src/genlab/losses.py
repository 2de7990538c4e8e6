"""Loss functions, each on raw discriminator logits or decoder outputs.

GAN losses take logits, never probabilities: `-log sigmoid(l)` is computed as
`softplus(-l)`, which is exact where `log(sigmoid(l))` underflows and is safe
under float16 autocast (`BCELoss` on sigmoid outputs is not).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.utils.errors import ConfigError


class GANLoss(NamedTuple):
    """The discriminator's and the generator's loss, each averaged over the batch."""

    discriminator: Callable[[Tensor, Tensor], Tensor]  # (real_logits, fake_logits) -> loss
    generator: Callable[[Tensor], Tensor]  # (fake_logits) -> loss


def nonsaturating_d(real: Tensor, fake: Tensor) -> Tensor:
    """Goodfellow et al. 2014: L_D = -[log D(x) + log(1 - D(G(z)))], D = sigmoid(logit)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def nonsaturating_g(fake: Tensor) -> Tensor:
    """Goodfellow et al. 2014, non-saturating form: L_G = -log D(G(z))."""
    return F.softplus(-fake).mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    """Lim & Ye 2017; Miyato et al. 2018: L_D = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    """Arjovsky et al. 2017: L_D = E[D(G(z))] - E[D(x)] (needs a Lipschitz critic)."""
    return fake.mean() - real.mean()


def critic_g(fake: Tensor) -> Tensor:
    """Generator loss of the hinge and Wasserstein GANs: L_G = -E[D(G(z))]."""
    return -fake.mean()


def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    """Mao et al. 2017: L_D = 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    """Mao et al. 2017: L_G = 1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (fake - 1.0).pow(2).mean()


GAN_LOSSES: dict[str, GANLoss] = {
    "nonsaturating": GANLoss(nonsaturating_d, nonsaturating_g),
    "hinge": GANLoss(hinge_d, critic_g),
    "wasserstein": GANLoss(wasserstein_d, critic_g),
    "lsgan": GANLoss(lsgan_d, lsgan_g),
}


def gan_loss(name: str) -> GANLoss:
    """Look up a GAN loss by its config name."""
    if name not in GAN_LOSSES:
        raise ConfigError(
            f"model.loss={name!r} is not a GAN loss; choose one of {', '.join(GAN_LOSSES)}"
        )
    return GAN_LOSSES[name]


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """Gulrajani et al. 2017 (WGAN-GP): E[(||grad_x D(x_hat)||_2 - 1)^2],
    x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per image.

    The graph is kept (`create_graph`), so the penalty trains the critic.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """Mescheder, Geiger & Nowozin 2018 (R1): E[||grad_x D(x)||_2^2] on real images.

    Multiply by gamma / 2 for the paper's regulariser; the graph is kept.
    """
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions (nats)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: Tensor, target01: Tensor) -> Tensor:
    """-log p(x|z) per sample for pixel intensities in [0, 1], summed over pixels (nats)."""
    nll = F.binary_cross_entropy_with_logits(logits, target01, reduction="none")
    return nll.flatten(1).sum(dim=1)


def gaussian_nll(mean: Tensor, target: Tensor, sigma: float) -> Tensor:
    """-log N(x; mean, sigma^2 I) per sample, summed over pixels (nats)."""
    sq = ((target - mean) / sigma).pow(2)
    per_pixel = 0.5 * sq + math.log(sigma) + 0.5 * math.log(2.0 * math.pi)
    return per_pixel.flatten(1).sum(dim=1)


def iwae_bound(log_weights: Tensor) -> Tensor:
    """Burda, Grosse & Salakhutdinov, ICLR 2016: L_k = log (1/k) sum_i w_i per image.

    `log_weights` is (k, B): log w_i = log p(x, z_i) - log q(z_i|x), z_i ~ q(z|x).
    k = 1 is the ELBO; L_k <= log p(x) and it tightens as k grows. Its autograd gradient is
    the paper's eq. 14, sum_i w~_i grad log w_i with the normalised weights
    w~ = softmax_i(log w), so -L_k is trained on directly.
    """
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])
