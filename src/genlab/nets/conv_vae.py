"""Convolutional encoder and decoder for a VAE on small images (Kingma & Welling, ICLR 2014)."""

from __future__ import annotations

import torch
from torch import nn

from genlab.nets.layers import flat_features


class ConvEncoder(nn.Module):
    """x -> two 4x4 stride-2 convolutions -> MLP -> (mu, logvar) of q(z|x)."""

    def __init__(
        self,
        latent_dim: int = 16,
        channels: int = 1,
        image_size: int = 28,
        width: int = 32,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.Flatten(),
        )
        n_features = flat_features(self.features, (channels, image_size, image_size))
        self.head = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(True), nn.Linear(hidden, 2 * latent_dim)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """z -> MLP -> (2w, s/4, s/4) -> two 4x4 stride-2 transposed convolutions -> pixel parameters.

    The output has no activation: it is the Bernoulli logit or the Gaussian mean,
    and the VAE module maps it to an image in [-1, 1].
    """

    def __init__(
        self,
        latent_dim: int = 16,
        channels: int = 1,
        image_size: int = 28,
        width: int = 32,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ConvDecoder needs image_size divisible by 4, got {image_size}")
        self.latent_dim = latent_dim
        self.start_size = image_size // 4
        self.project = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, 2 * width * self.start_size**2),
            nn.ReLU(True),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, self.start_size, self.start_size)
        return self.upsample(x)
