"""ResNet generator and discriminator for 32x32 images (Miyato et al., ICLR 2018, SNGAN's
CIFAR-10 networks; after Gulrajani et al. 2017).

G: z -> Linear -> (w, 4, 4) -> 3 up-blocks -> BN, ReLU, conv 3x3 -> tanh.
D: 2 down-blocks (the first "optimised": no pre-activation) -> 2 blocks -> ReLU ->
   sum over pixels -> Linear. Spectral normalisation on every D weight by default.
With `num_classes` > 0, G's batch norms become class-conditional and D ends in a
projection head (Miyato & Koyama, ICLR 2018): the cGAN of that paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nets.layers import ConditionalBatchNorm2d, projection_logit, spectrally_normalised


class ClassBatchNorm(nn.Module):
    """BatchNorm2d, or its class-conditional form when `num_classes` > 0."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = (
            ConditionalBatchNorm2d(features, num_classes)
            if num_classes
            else nn.BatchNorm2d(features)
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.norm(x) if labels is None else self.norm(x, labels)


class UpBlock(nn.Module):
    """BN-ReLU-upsample-conv3-BN-ReLU-conv3, plus upsample-conv1 on the shortcut."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int) -> None:
        super().__init__()
        self.norm1 = ClassBatchNorm(in_ch, num_classes)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = ClassBatchNorm(out_ch, num_classes)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, labels)), scale_factor=2.0)
        h = self.conv2(F.relu(self.norm2(self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0))


class DownBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-(avgpool), plus conv1-(avgpool) on the shortcut.

    `first`: no ReLU before the first conv and the shortcut pools before its conv
    (SNGAN's "optimised" block, which reads raw pixels).
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if (in_ch != out_ch or downsample) else None

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.pool(self.conv2(F.relu(self.conv1(h))))
        if self.shortcut is None:
            return h + x
        skip = self.shortcut(self.pool(x)) if self.first else self.pool(self.shortcut(x))
        return h + skip


class ResNetGenerator(nn.Module):
    """z (and y) -> (3, 32, 32) in [-1, 1]; `image_size` must be a multiple of 8."""

    def __init__(
        self,
        latent_dim: int = 128,
        channels: int = 3,
        image_size: int = 32,
        width: int = 256,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"ResNetGenerator needs image_size divisible by 8, got {image_size}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.start_size = image_size // 8
        self.project = nn.Linear(latent_dim, width * self.start_size**2)
        self.blocks = nn.ModuleList([UpBlock(width, width, num_classes) for _ in range(3)])
        self.norm = nn.BatchNorm2d(width)
        self.to_image = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], -1, self.start_size, self.start_size)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.to_image(F.relu(self.norm(h))))


class ResNetDiscriminator(nn.Module):
    """(3, 32, 32) (and y) -> one logit per image."""

    def __init__(
        self,
        channels: int = 3,
        image_size: int = 32,
        width: int = 128,
        spectral_norm: bool = True,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.blocks = nn.Sequential(
            DownBlock(channels, width, downsample=True, first=True),
            DownBlock(width, width, downsample=True),
            DownBlock(width, width, downsample=False),
            DownBlock(width, width, downsample=False),
        )
        self.head = nn.Linear(width, 1)
        self.class_embedding = nn.Embedding(num_classes, width) if num_classes else None
        if spectral_norm:
            spectrally_normalised(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return projection_logit(self.head(h).squeeze(1), h, self.class_embedding, labels)
