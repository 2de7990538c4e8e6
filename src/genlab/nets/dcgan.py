"""DCGAN generator and discriminator (Radford, Metz & Chintala, ICLR 2016).

Sized for small images on a CPU: two stride-2 stages, so `image_size` must be a
multiple of 4 (28 for MNIST: 7 -> 14 -> 28; 32 for CIFAR-10: 8 -> 16 -> 32).
With `num_classes` > 0 both become class-conditional: G reads [z, one_hot(y)]
(Mirza & Osindero 2014) and D ends in a projection head (Miyato & Koyama 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.nets.layers import (
    flat_features,
    init_dcgan_weights,
    one_hot_concat,
    projection_logit,
    spectrally_normalised,
)


class DCGANGenerator(nn.Module):
    """z -> Linear -> (2w, s/4, s/4) -> ConvT 4x4/2 + BN + ReLU -> ConvT 4x4/2 -> tanh."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        image_size: int = 28,
        width: int = 64,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"DCGANGenerator needs image_size divisible by 4, got {image_size}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.start_size = image_size // 4
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 2 * width * self.start_size**2, bias=False),
            nn.BatchNorm1d(2 * width * self.start_size**2),
            nn.ReLU(inplace=True),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(one_hot_concat(z, labels, self.num_classes))
        return self.upsample(h.view(z.shape[0], -1, self.start_size, self.start_size))


class DCGANDiscriminator(nn.Module):
    """x -> Conv 4x4/2 + LeakyReLU(0.2) -> Conv 4x4/2 (+ BN) + LeakyReLU(0.2) -> Linear -> logit.

    Returns one logit per image (no sigmoid): losses apply it in a numerically
    stable form, which also keeps mixed precision safe. `spectral_norm` normalises
    every weight (Miyato et al. 2018; use it with batch_norm=false, as SN-DCGAN does).
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        width: int = 64,
        batch_norm: bool = True,
        spectral_norm: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(2 * width) if batch_norm else nn.Identity(),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        n_features = flat_features(self.features, (channels, image_size, image_size))
        self.head = nn.Linear(n_features, 1)
        self.class_embedding = nn.Embedding(num_classes, n_features) if num_classes else None
        init_dcgan_weights(self)
        if spectral_norm:
            spectrally_normalised(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        return projection_logit(self.head(h).squeeze(1), h, self.class_embedding, labels)
