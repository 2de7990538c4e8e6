"""Convolutional encoder and decoder for a VAE on small images (Kingma & Welling, ICLR 2014).

With `num_classes` > 0 both are class-conditional, as in the CVAE (Sohn, Lee & Yan,
NeurIPS 2015): q(z|x, y) and p(x|z, y), the one-hot label y appended to the MLP's input.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.nets.layers import flat_features, one_hot_concat


class ConvEncoder(nn.Module):
    """x (and y) -> two 4x4 stride-2 convolutions -> MLP -> (mu, logvar) of q(z|x[, y])."""

    def __init__(
        self,
        latent_dim: int = 16,
        channels: int = 1,
        image_size: int = 28,
        width: int = 32,
        hidden: int = 256,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.Flatten(),
        )
        n_features = flat_features(self.features, (channels, image_size, image_size))
        self.head = nn.Sequential(
            nn.Linear(n_features + num_classes, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, 2 * latent_dim),
        )

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = one_hot_concat(self.features(x), labels, self.num_classes)
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """z (and y) -> MLP -> (2w, s/4, s/4) -> two 4x4 stride-2 transposed convolutions -> pixels.

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
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ConvDecoder needs image_size divisible by 4, got {image_size}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.start_size = image_size // 4
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, 2 * width * self.start_size**2),
            nn.ReLU(True),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(one_hot_concat(z, labels, self.num_classes))
        return self.upsample(h.view(z.shape[0], -1, self.start_size, self.start_size))
