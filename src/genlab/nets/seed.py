"""The networks of the article genlab grew from, translated from Keras.

The article's generator is Dense(7*7*128, relu) -> Reshape -> four 5x5
transposed convolutions with strides 1, 2, 2, 2 and 128 channels, the last with
tanh; its discriminator is three 5x5 stride-2 convolutions with LeakyReLU(0.01)
and Dense(1, sigmoid). As written the generator makes 56x56 images for a 28x28
discriminator, and has no nonlinearity between its transposed convolutions.

`strides` and `start_size` are parameters so that both the literal recipe
(`strides=[1, 2, 2, 2]`, which start-up validation rejects with both shapes
named) and the fix to 28x28 (`[1, 2, 2, 1]`) can be configured. Keras'
`padding="same"` is reproduced exactly: output size = input size * stride.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genlab.nets.layers import flat_features


class SeedGenerator(nn.Module):
    """The article's generator; `batch_norm=True` adds BatchNorm+ReLU after each hidden layer."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        width: int = 128,
        start_size: int = 7,
        strides: Sequence[int] = (1, 2, 2, 1),
        kernel_size: int = 5,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.width = width
        self.start_size = start_size
        self.project = nn.Sequential(nn.Linear(latent_dim, width * start_size**2), nn.ReLU(True))
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            last = i == len(strides) - 1
            layers.append(
                nn.ConvTranspose2d(
                    width,
                    channels if last else width,
                    kernel_size,
                    stride=stride,
                    padding=kernel_size // 2,
                    output_padding=stride - 1,
                )
            )
            if last:
                layers.append(nn.Tanh())
            elif batch_norm:
                layers += [nn.BatchNorm2d(width), nn.ReLU(True)]
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], self.width, self.start_size, self.start_size)
        return self.upsample(x)


class SeedDiscriminator(nn.Module):
    """The article's discriminator, returning a logit (its sigmoid moves into the loss)."""

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        width: int = 128,
        n_layers: int = 3,
        kernel_size: int = 5,
        leaky_slope: float = 0.01,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = channels
        for _ in range(n_layers):
            layers += [
                nn.Conv2d(in_channels, width, kernel_size, stride=2, padding=kernel_size // 2),
                nn.LeakyReLU(leaky_slope, inplace=True),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(flat_features(self.features, (channels, image_size, image_size)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)
