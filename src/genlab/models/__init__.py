"""LightningModules: training logic only (no files, no loggers)."""

from genlab.models.base import GenerativeModule
from genlab.models.gan import GANModule
from genlab.models.vae import VAEModule

__all__ = ["GANModule", "GenerativeModule", "VAEModule"]
