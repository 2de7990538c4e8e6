"""Networks that compute almost nothing, so that a step's time is the framework's own cost.

Each reduces an image to its mean pixel or expands a vector into a constant image, with
one linear layer in between: a handful of tiny ops per step. They plug into every family
in place of its real networks (`near_zero_networks`): a GAN's generator and critic, a
VAE's encoder and decoder, the flow or diffusion network; the model's own step (noise
levels, losses, logging) still runs as in training.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, open_dict
from torch import Tensor, nn


class MeanPixelEncoder(nn.Module):
    """(mu, logvar) of q(z|x) from each image's mean pixel."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.linear(x.mean((1, 2, 3)).unsqueeze(1)).chunk(2, dim=1)
        return mu, logvar


class ConstantImageDecoder(nn.Module):
    """One value per latent vector, broadcast to an image (decoder or generator)."""

    def __init__(self, latent_dim: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.linear = nn.Linear(latent_dim, 1)
        self.image_shape = (channels, image_size, image_size)

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z)[:, :, None, None].expand(-1, *self.image_shape)


class MeanPixelCritic(nn.Module):
    """One logit per image from its mean pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.mean((1, 2, 3)).unsqueeze(1)).squeeze(1)


class MeanPixelDenoiser(nn.Module):
    """An iterative family's network F(x, t, labels): one value per image from its mean pixel
    and its time, broadcast to the image's shape (labels are ignored)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: Tensor, time: Tensor, labels: Tensor | None = None) -> Tensor:
        time = time.to(x.dtype).reshape(-1).expand(x.shape[0])  # per image, or one for all
        features = torch.stack([x.mean((1, 2, 3)), time], dim=1)
        return self.linear(features)[:, :, None, None].expand_as(x)


def near_zero_networks(cfg: DictConfig) -> None:
    """Replace the networks of `cfg.model` by the ones above."""
    here = __name__
    with open_dict(cfg):
        if "net" in cfg.model:  # flow, diffusion, EDM: one network of the image and time
            cfg.model.net = {"_target_": f"{here}.MeanPixelDenoiser"}
            return
    image = {"channels": cfg.data.channels, "image_size": cfg.data.image_size}
    latent_dim = cfg.model.latent_dim
    decoder = {"_target_": f"{here}.ConstantImageDecoder", "latent_dim": latent_dim}
    with open_dict(cfg):
        if "encoder" in cfg.model:
            cfg.model.encoder = {"_target_": f"{here}.MeanPixelEncoder", "latent_dim": latent_dim}
            cfg.model.decoder = {**decoder, **image}
        else:
            cfg.model.generator = {**decoder, **image}
            cfg.model.discriminator = {"_target_": f"{here}.MeanPixelCritic"}
