"""Likelihood bounds of a VAE: the ELBO and the importance-weighted bound.

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

(Burda, Grosse & Salakhutdinov, ICLR 2016). k = 1 is the ELBO; the bound tightens
as k grows, so NLL_iw <= -ELBO. For the Bernoulli likelihood on continuous pixel
intensities these are bounds of that model's density, comparable between genlab
runs but not to discrete-pixel NLLs reported by autoregressive models.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Normal

from genlab.models.vae import VAEModule


@torch.no_grad()
def iw_nll(vae: VAEModule, x: Tensor, k: int, max_decoded: int = 4096) -> Tensor:
    """Importance-weighted upper bound on -log p(x) per image (nats), with k samples.

    The k samples are decoded in chunks of at most `max_decoded` images, so k = 1000
    on a full batch fits in memory.
    """
    mu, logvar = vae.encoder(x)
    posterior = Normal(mu.float(), torch.exp(0.5 * logvar.float()))
    per_chunk = max(1, max_decoded // len(x))
    log_weights = torch.cat(
        [
            _log_weights(vae, x, posterior, min(per_chunk, k - start))
            for start in range(0, k, per_chunk)
        ]
    )
    return -(torch.logsumexp(log_weights, dim=0) - math.log(k))


def _log_weights(vae: VAEModule, x: Tensor, posterior: Normal, k: int) -> Tensor:
    """log p(x|z) + log p(z) - log q(z|x) for k posterior samples per image: (k, B)."""
    z = posterior.sample((k,))  # (k, B, D)
    log_q = posterior.log_prob(z).sum(-1)
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    decoded = vae.decoder(z.flatten(0, 1))
    repeated = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
    log_px = -vae.reconstruction_nll(decoded, repeated).view(k, -1)
    return log_px + log_prior - log_q


@torch.no_grad()
def likelihood_report(
    vae: VAEModule, loader: torch.utils.data.DataLoader, k: int, device: torch.device
) -> dict[str, float]:
    """Test ELBO and IW bound (nats per image, and the bound in bits per dimension)."""
    vae.eval()
    neg_elbo, nll, n = 0.0, 0.0, 0
    dims = 0
    for x, _ in loader:
        x = x.to(device)
        recon, kl = vae.negative_elbo_terms(x)
        neg_elbo += (recon + kl).sum().item()
        nll += iw_nll(vae, x, k).sum().item()
        n += len(x)
        dims = x[0].numel()
    return {
        "test_elbo_nats": -neg_elbo / n,
        "iw_nll_nats": nll / n,
        "iw_nll_bits_per_dim": nll / n / (dims * math.log(2.0)),
        "iw_samples": k,
    }
