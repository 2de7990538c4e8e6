"""Tiny models and a bare Trainer: real Lightning training in well under a second."""

from __future__ import annotations

from functools import partial

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genlab.models import DiffusionModule, FlowMatchingModule, GANModule, VAEModule
from genlab.nets.conv_vae import ConvDecoder, ConvEncoder
from genlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.nets.unet import UNet

LATENT = 8


def tiny_gan(num_classes: int = 0, **kwargs: object) -> GANModule:
    """The DCGAN at width 8 and latent size 8 (conditional with `num_classes` > 0)."""
    return GANModule(
        generator=DCGANGenerator(latent_dim=LATENT, width=8, num_classes=num_classes),
        discriminator=DCGANDiscriminator(width=8, num_classes=num_classes),
        optimizer=partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        latent_dim=LATENT,
        num_classes=num_classes,
        **kwargs,
    )


def tiny_vae(num_classes: int = 0, **kwargs: object) -> VAEModule:
    """The conv VAE at width 8, hidden 32 and latent size 8 (a CVAE with `num_classes` > 0)."""
    return VAEModule(
        encoder=ConvEncoder(latent_dim=LATENT, width=8, hidden=32, num_classes=num_classes),
        decoder=ConvDecoder(latent_dim=LATENT, width=8, hidden=32, num_classes=num_classes),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        latent_dim=LATENT,
        num_classes=num_classes,
        **kwargs,
    )


def tiny_unet(num_classes: int = 0) -> UNet:
    """The UNet at width 8 (attention at 7x7), its output layer made non-zero so that the
    network's output depends on every input from the first step."""
    net = UNet(width=8, num_classes=num_classes)
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    return net


def tiny_flow(num_classes: int = 0, **kwargs: object) -> FlowMatchingModule:
    """Flow matching with the tiny UNet (Euler, 4 steps unless `sampling` says otherwise)."""
    kwargs.setdefault("sampling", {"solver": "euler", "steps": 4})
    return FlowMatchingModule(
        net=tiny_unet(num_classes),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        num_classes=num_classes,
        **kwargs,
    )


def tiny_diffusion(num_classes: int = 0, **kwargs: object) -> DiffusionModule:
    """DDPM with the tiny UNet over T = 100 steps (DDIM, 4 steps unless told otherwise)."""
    kwargs.setdefault("sampling", {"solver": "ddim", "steps": 4, "eta": 0.0})
    kwargs.setdefault("num_train_steps", 100)
    return DiffusionModule(
        net=tiny_unet(num_classes),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        num_classes=num_classes,
        **kwargs,
    )


def loader(n: int = 64, batch_size: int = 8, seed: int = 0) -> DataLoader:
    """`n` random images in [-1, 1] with labels `i % 10`, in a fixed order."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1
    return DataLoader(TensorDataset(images, torch.arange(n) % 10), batch_size)


def fit(
    model: pl.LightningModule,
    iterations: int,
    data: DataLoader | None = None,
    ckpt_path: str | None = None,
    **trainer_kwargs: object,
) -> pl.Trainer:
    """Train `model` for `iterations` batches on the CPU (resuming from `ckpt_path` if
    given), with nothing written to disk unless `trainer_kwargs` asks for it."""
    settings = {
        "accelerator": "cpu",
        "max_steps": model.optimizer_steps_for(iterations),
        "max_epochs": 100,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = pl.Trainer(**(settings | trainer_kwargs))
    trainer.fit(
        model, train_dataloaders=data if data is not None else loader(), ckpt_path=ckpt_path
    )
    return trainer
