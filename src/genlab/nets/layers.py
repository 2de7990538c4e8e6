"""Pieces shared by several architectures."""

from __future__ import annotations

import torch
from torch import nn


def flat_features(features: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Number of values `features` produces for one image, found by a dry run.

    A dry run is exact for any kernel, stride and padding, where a formula per
    architecture would have to be kept in step by hand.
    """
    with torch.no_grad():
        was_training = features.training
        features.eval()
        n = features(torch.zeros(1, *image_shape)).numel()
        features.train(was_training)
    return n


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al. 2016: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
