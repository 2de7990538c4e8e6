"""A small UNet for flow matching and diffusion on 28x28 and 32x32 images.

After the DDPM network of Ho, Jain & Abbeel 2020 (itself after PixelCNN++), cut down to
run on a CPU: residual blocks with GroupNorm + SiLU read a time (and class) embedding,
each level ends in a stride-2 conv (28 -> 14 -> 7 with channel_mults (1, 2)), the decoder
mirrors it with nearest upsampling + conv and concatenated skips, and self-attention runs
only at `attention_resolution`, where it is cheap (7x7 = 49 positions).

Class conditioning embeds `num_classes + 1` labels: index `num_classes` is the null label,
the "no class" of classifier-free guidance (Ho & Salimans 2022), which label dropout
trains and `labels=None` selects.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TIME_SCALE = 1000.0  # times in [0, 1] are embedded as t * 1000, the step range of DDPM


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (Wu & He 2018: results vary little from 8 to 32); the
    gcd keeps every width valid."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """Vaswani et al. 2017 position encoding of times, as in Ho et al. 2020:
    [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2)), with t scaled to [0, 1000] so that
    nearby times in [0, 1] still get distinct embeddings."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = TIME_SCALE * t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GN-SiLU-conv3, + Linear(SiLU(emb)) per channel, GN-SiLU-dropout-conv3; a 1x1 conv on
    the shortcut when the width changes."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.shortcut(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual
    (Ho et al. 2020 use it at 16x16; here at the coarsest map, where it stays cheap)."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (n, heads, pixels, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class Level(nn.Module):
    """ResBlocks at one resolution, each followed by attention when the level asks for it."""

    def __init__(
        self, in_ch: int, out_ch: int, blocks: int, emb_dim: int, attention: bool, dropout: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(in_ch if i == 0 else out_ch, out_ch, emb_dim, dropout) for i in range(blocks)
        )
        self.attention = nn.ModuleList(
            SelfAttention(out_ch) if attention else nn.Identity() for _ in range(blocks)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for block, attention in zip(self.blocks, self.attention, strict=True):
            x = attention(block(x, emb))
        return x


class UNet(nn.Module):
    """(x, t, labels) -> a tensor of x's shape: a velocity for flow matching, a noise
    prediction for diffusion; `t` holds times in [0, 1] (diffusion passes timestep / T).

    Each of the len(channel_mults) levels halves the resolution after its blocks, so
    `image_size` must be divisible by 2**len(channel_mults); the middle runs at
    image_size / 2**len(channel_mults) (7 for 28 with (1, 2); 8 for 32).
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        width: int = 32,
        channel_mults: tuple[int, ...] = (1, 2),
        blocks_per_level: int = 1,
        attention_resolution: int = 7,
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        factor = 2 ** len(channel_mults)
        if image_size % factor:
            raise ValueError(
                f"UNet with channel_mults={tuple(channel_mults)} halves the image "
                f"{len(channel_mults)} times, so image_size must be divisible by {factor}, "
                f"got {image_size}"
            )
        self.num_classes = num_classes
        self.width = width
        emb_dim = 4 * width
        self.time_mlp = nn.Sequential(
            nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_embedding = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None

        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        ch, size = width, image_size
        for mult in channel_mults:
            out_ch = width * mult
            self.down.append(
                Level(ch, out_ch, blocks_per_level, emb_dim, size == attention_resolution, dropout)
            )
            self.downsample.append(nn.Conv2d(out_ch, out_ch, 3, stride=2, padding=1))
            # The decoder level at this resolution reads the upsampled map and this skip.
            self.upsample.insert(0, nn.Conv2d(out_ch, out_ch, 3, padding=1))
            self.up.insert(
                0,
                Level(
                    2 * out_ch,
                    ch,
                    blocks_per_level,
                    emb_dim,
                    size == attention_resolution,
                    dropout,
                ),
            )
            ch, size = out_ch, size // 2
        self.middle = Level(ch, ch, 2, emb_dim, size == attention_resolution, dropout)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)
        # Zero output at start: the net first predicts 0, and early steps stay stable.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def null_label(self) -> int:
        """The label that means "no class" (classifier-free guidance's unconditional pass)."""
        return self.num_classes

    def embedding(self, t: Tensor, labels: Tensor | None, batch: int) -> Tensor:
        """Time MLP (+ class embedding), one row per image; None labels are the null label."""
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_mlp(sinusoidal_embedding(t, self.width))
        if self.class_embedding is None:
            if labels is not None:
                raise TypeError("an unconditional UNet (num_classes=0) is called with labels")
            return emb
        if labels is None:
            labels = torch.full((batch,), self.null_label, dtype=torch.long, device=emb.device)
        return emb + self.class_embedding(labels)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.embedding(torch.as_tensor(t, device=x.device), labels, x.shape[0])
        h = self.conv_in(x)
        skips = []
        for level, downsample in zip(self.down, self.downsample, strict=True):
            h = level(h, emb)
            skips.append(h)
            h = downsample(h)
        h = self.middle(h, emb)
        for level, upsample in zip(self.up, self.upsample, strict=True):
            h = upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = level(torch.cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
