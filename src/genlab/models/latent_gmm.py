"""Ex-post density estimation of a VAE's latents (Ghosh et al., "From Variational to
Deterministic Autoencoders", ICLR 2020, sec. 4).

Prior samples z ~ N(0, I) land where the aggregate posterior q(z) = E_x q(z|x) has
little mass and the decoder was never trained. After training, fit
    p_GMM(z) = sum_c pi_c N(z; m_c, S_c)
by EM to the encoder means mu(x) of the training images and draw z from it instead:
no retraining, and usually a lower FID.

For a conditional VAE, one mixture per class is fitted to the latents of that class's
images, p_GMM(z|y), and z is drawn given the label the decoder will read: the encoded z
keep some class information, so a mixture over all classes would pull an image towards
another class than its label asks for.
"""

from __future__ import annotations

import torch
from pytorch_lightning import LightningDataModule
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from torch import Tensor

from genlab.errors import ConfigError
from genlab.models.base import GenerativeModule
from genlab.models.capabilities import Encodes
from genlab.nets.layers import evaluating

#: where `generate` draws latents from: the model's prior, or a mixture fitted after training
LATENTS = ("prior", "gmm")  # where sampling draws a model's latents from


class GaussianMixture:
    """A full-covariance Gaussian mixture over latents: fitted by scikit-learn, sampled by torch
    (so that a seeded CPU generator gives the same latents).
    """

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor) -> None:
        self.weights = weights
        self.means = means
        self.scale_tril = torch.linalg.cholesky(covariances.double()).float()

    @classmethod
    def fit(cls, latents: Tensor, components: int, seed: int) -> GaussianMixture:
        """EM on `latents` (N, D) from a k-means start seeded with `seed`."""
        gmm = SklearnGaussianMixture(components, covariance_type="full", random_state=seed)
        gmm.fit(latents.double().numpy())
        return cls(
            *(torch.from_numpy(a).float() for a in (gmm.weights_, gmm.means_, gmm.covariances_))
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latents (n, D) on the CPU: a component c ~ pi, then m_c + L_c eps, L_c L_c^T = S_c."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], 1, generator=generator)
        return self.means[component] + (self.scale_tril[component] @ eps).squeeze(-1)


class LatentGMM:
    """p_GMM(z), or for a conditional VAE p_GMM(z|y): one mixture per class.

    Called as the VAE's `latent_draw(n, labels, generator)`. Without labels, a
    class-conditional one draws each label with its frequency in the training data
    first, i.e. samples the mixture of all classes.
    """

    def __init__(
        self, mixtures: list[GaussianMixture], class_weights: Tensor | None = None
    ) -> None:
        self.mixtures = mixtures
        self.class_weights = class_weights  # None: one mixture for every label

    @classmethod
    def fit(
        cls,
        latents: Tensor,
        components: int = 10,
        seed: int = 0,
        labels: Tensor | None = None,
        num_classes: int = 0,
    ) -> LatentGMM:
        """One mixture of `components` on `latents` (N, D), or with `labels` (N,) one per class
        0..num_classes-1, each with at most as many components as the class has images (two
        or more)."""
        if not 1 <= components <= len(latents):
            raise ConfigError(
                f"gmm_components must lie in 1..{len(latents)} (the training images), "
                f"got {components}"
            )
        if labels is None:
            return cls([GaussianMixture.fit(latents, components, seed)])
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ConfigError(
                f"the training labels must lie in 0..{num_classes - 1} (the model's classes), "
                f"got {labels.min()}..{labels.max()}; fit latents=gmm on the data the model "
                "was trained on"
            )
        counts = torch.bincount(labels, minlength=num_classes)
        if (counts < 2).any():  # EM needs two points
            few = ", ".join(str(c) for c in (counts < 2).nonzero().flatten().tolist())
            raise ConfigError(
                f"the training split has fewer than 2 images of class {few}, so latents=gmm "
                "cannot fit their latents; use latents=prior or data with every class"
            )
        mixtures = [
            GaussianMixture.fit(latents[labels == c], min(components, int(count)), seed)
            for c, count in enumerate(counts)
        ]
        return cls(mixtures, counts.float() / counts.sum())

    def __call__(
        self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """n latents (n, D) on the CPU, each drawn from its label's mixture."""
        if self.class_weights is None:
            return self.mixtures[0].sample(n, generator)
        if labels is None:
            labels = torch.multinomial(self.class_weights, n, replacement=True, generator=generator)
        labels = labels.cpu()
        z = torch.empty(n, self.mixtures[0].means.shape[1])
        for c, mixture in enumerate(self.mixtures):  # in class order: reproducible when seeded
            rows = (labels == c).nonzero().flatten()
            if len(rows):
                z[rows] = mixture.sample(len(rows), generator)
        return z


def check_latents(latents: str, model: GenerativeModule) -> None:
    """Raise ConfigError unless `latents` is known and the model can use it (gmm: a VAE)."""
    if latents not in LATENTS:
        raise ConfigError(f"latents={latents!r} is unknown; choose one of {', '.join(LATENTS)}")
    if latents == "gmm" and not isinstance(model, Encodes):
        raise ConfigError(
            f"latents=gmm fits a mixture to a VAE's encoded latents, but this checkpoint holds "
            f"a {type(model).__name__}, which has no encoder; use latents=prior"
        )


@torch.no_grad()
def encoded_means(vae: Encodes, images: Tensor, labels: Tensor, batch_size: int = 500) -> Tensor:
    """Encoder means mu(x[, y]) of `images` (N, D) on the CPU, in eval mode."""
    with evaluating(vae):
        means = [
            vae.encode(x.to(vae.device), vae.batch_labels(y.to(vae.device))).float().cpu()
            for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)
        ]
    return torch.cat(means)


def fit_latent_gmm(
    vae: Encodes, datamodule: LightningDataModule, components: int = 10, seed: int = 0
) -> LatentGMM:
    """A LatentGMM fitted to the encoder means of `datamodule`'s training split (per class
    for a conditional VAE)."""
    images, labels = datamodule.real_images("train"), datamodule.real_labels("train")
    latents = encoded_means(vae, images, labels)
    return LatentGMM.fit(latents, components, seed, vae.batch_labels(labels), vae.num_classes)
