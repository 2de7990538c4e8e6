"""LightningModules: training logic only (no files, no loggers)."""

from genlab.models.base import GenerativeModule
from genlab.models.diffusion import DiffusionModule
from genlab.models.edm import EDMModule
from genlab.models.flow import FlowMatchingModule
from genlab.models.gan import GANModule
from genlab.models.vae import VAEModule

__all__ = [
    "DiffusionModule",
    "EDMModule",
    "FlowMatchingModule",
    "GANModule",
    "GenerativeModule",
    "VAEModule",
]
