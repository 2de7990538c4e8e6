"""Likelihood bounds of a VAE: the ELBO and the importance-weighted bound.

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

(Burda, Grosse & Salakhutdinov, ICLR 2016). k = 1 is the ELBO; the bound tightens
as k grows, so NLL_iw <= -ELBO. For the Bernoulli likelihood on continuous pixel
intensities these are bounds of that model's density, comparable between genlab
runs but not to discrete-pixel NLLs reported by autoregressive models.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genlab.losses import iwae_bound

if TYPE_CHECKING:  # VAEModule.log_likelihood calls this module
    from genlab.models.vae import VAEModule


@torch.no_grad()
def iw_nll(
    vae: VAEModule, x: Tensor, k: int, max_decoded: int = 4096, labels: Tensor | None = None
) -> Tensor:
    """Importance-weighted upper bound -L_k on -log p(x[|y]) per image (nats), k samples.

    The k samples are decoded in chunks of at most `max_decoded` images, so k = 1000
    on a full batch fits in memory. A conditional VAE needs the images' `labels`.
    """
    posterior = vae.posterior(x, labels)
    per_chunk = max(1, max_decoded // len(x))
    log_weights = torch.cat(
        [
            vae.log_weights(x, posterior, min(per_chunk, k - start), labels)
            for start in range(0, k, per_chunk)
        ]
    )
    return -iwae_bound(log_weights)


@torch.no_grad()
def likelihood_report(
    vae: VAEModule, loader: torch.utils.data.DataLoader, k: int, device: torch.device
) -> dict[str, float]:
    """Test ELBO and IW bound (nats per image, and the bound in bits per dimension)."""
    vae.eval()
    neg_elbo, nll, n = 0.0, 0.0, 0
    dims = 0
    for x, y in loader:
        x, labels = x.to(device), vae.batch_labels(y.to(device))
        recon, kl = vae.negative_elbo_terms(x, labels)
        neg_elbo += (recon + kl).sum().item()
        nll += iw_nll(vae, x, k, labels=labels).sum().item()
        n += len(x)
        dims = x[0].numel()
    return {
        "test_elbo_nats": -neg_elbo / n,
        "iw_nll_nats": nll / n,
        "iw_nll_bits_per_dim": nll / n / (dims * math.log(2.0)),
        "iw_samples": k,
    }
