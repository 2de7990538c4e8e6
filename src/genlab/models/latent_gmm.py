"""Ex-post density estimation of a VAE's latents (Ghosh et al., "From Variational to
Deterministic Autoencoders", ICLR 2020, sec. 4).

Prior samples z ~ N(0, I) land where the aggregate posterior q(z) = E_x q(z|x) has
little mass and the decoder was never trained. After training, fit
    p_GMM(z) = sum_c pi_c N(z; m_c, S_c)
by EM to the encoder means mu(x) of the training images and draw z from it instead:
no retraining, and usually a lower FID.

A conditional VAE's mixture is fitted on z alone (each image encoded with its own label)
and labels are drawn or given as they are for the prior: the mixture takes the place of
p(z), which does not depend on y. The encoded z still carry some class information, so a
z drawn from the mixture can pull its image towards another class than the label asks
for: expect a lower FID but fewer images of the requested class than with the prior.
"""

from __future__ import annotations

import torch
from pytorch_lightning import LightningDataModule
from sklearn.mixture import GaussianMixture
from torch import Tensor

from genlab.models.base import GenerativeModule, conditioned
from genlab.models.vae import VAEModule
from genlab.nets.layers import evaluating
from genlab.utils.errors import ConfigError

#: where `generate` draws latents from: the model's prior, or a mixture fitted after training
SAMPLERS = ("prior", "gmm")


class LatentGMM:
    """A full-covariance Gaussian mixture over latents: fitted by scikit-learn, sampled by torch
    (so that a seeded CPU generator gives the same latents, in a random component order).
    """

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor) -> None:
        self.weights = weights
        self.means = means
        self.scale_tril = torch.linalg.cholesky(covariances.double()).float()

    @classmethod
    def fit(cls, latents: Tensor, components: int = 10, seed: int = 0) -> LatentGMM:
        """EM on `latents` (N, D) from a k-means start seeded with `seed`."""
        if not 1 <= components <= len(latents):
            raise ConfigError(
                f"gmm_components must lie in 1..{len(latents)} (the training images), "
                f"got {components}"
            )
        gmm = GaussianMixture(components, covariance_type="full", random_state=seed)
        gmm.fit(latents.double().numpy())
        return cls(
            *(torch.from_numpy(a).float() for a in (gmm.weights_, gmm.means_, gmm.covariances_))
        )

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latents (n, D) on the CPU: a component c ~ pi, then m_c + L_c eps, L_c L_c^T = S_c."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], 1, generator=generator)
        return self.means[component] + (self.scale_tril[component] @ eps).squeeze(-1)


def check_sampler(sampler: str, model: GenerativeModule) -> None:
    """Raise ConfigError unless `sampler` is known and the model can use it (gmm: a VAE)."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler={sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")
    if sampler == "gmm" and not isinstance(model, VAEModule):
        raise ConfigError(
            f"sampler=gmm fits a mixture to a VAE's encoded latents, but this checkpoint holds "
            f"a {type(model).__name__}, which has no encoder; use sampler=prior"
        )


@torch.no_grad()
def encoded_means(vae: VAEModule, images: Tensor, labels: Tensor, batch_size: int = 500) -> Tensor:
    """Encoder means mu(x[, y]) of `images` (N, D) on the CPU, in eval mode."""
    with evaluating(vae):
        means = [
            conditioned(vae.encoder, x.to(vae.device), vae.batch_labels(y.to(vae.device)))[0]
            .float()
            .cpu()
            for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)
        ]
    return torch.cat(means)


def fit_latent_gmm(
    vae: VAEModule, datamodule: LightningDataModule, components: int = 10, seed: int = 0
) -> LatentGMM:
    """A LatentGMM fitted to the encoder means of `datamodule`'s training split."""
    images, labels = datamodule.real_images("train"), datamodule.real_labels("train")
    return LatentGMM.fit(encoded_means(vae, images, labels), components, seed)
