"""Pieces shared by several architectures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode for the block (batch norm reads its running statistics, no
    dropout), then back in the mode it was in, even if the block raises."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def flat_features(features: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Number of values `features` produces for one image, found by a dry run.

    A dry run is exact for any kernel, stride and padding, where a formula per
    architecture would have to be kept in step by hand.
    """
    with torch.no_grad(), evaluating(features):
        return features(torch.zeros(1, *image_shape)).numel()


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al. 2016: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)
    (class embeddings, which DCGAN did not have, get N(0, 0.02) too)."""
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def spectrally_normalised(module: nn.Module) -> nn.Module:
    """Miyato et al. 2018: divide each conv/linear weight by its largest singular value.

    Applied in place to every Conv2d and Linear inside `module` (one power iteration per
    forward pass, torch's parametrization), which makes D roughly 1-Lipschitz.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d | nn.Linear | nn.Embedding):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectrally_normalised(child)
    return module


def one_hot_concat(x: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """[x, one_hot(labels)] along dim 1 (the cGAN of Mirza & Osindero 2014, the CVAE of Sohn
    et al. 2015); a net takes labels exactly when its num_classes > 0.

    A mismatch is a TypeError, the error of a call with the wrong arguments, which the
    models' start-up dry runs turn into a config message.
    """
    if (labels is None) != (num_classes == 0):
        wanted = "(inputs, labels)" if num_classes else "(inputs) only"
        raise TypeError(f"a network with num_classes={num_classes} is called with {wanted}")
    if labels is None:
        return x
    return torch.cat([x, nn.functional.one_hot(labels, num_classes).to(x.dtype)], dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017;
    Miyato & Koyama 2018): y = gamma_c * BN(x) + beta_c, with gamma_c = 1, beta_c = 0 at start."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = self.gain(labels)[:, :, None, None]
        return gain * self.norm(x) + self.bias(labels)[:, :, None, None]


def projection_logit(
    logit: torch.Tensor,
    h: torch.Tensor,
    class_embedding: nn.Embedding | None,
    labels: torch.Tensor | None,
) -> torch.Tensor:
    """A projection discriminator's output (Miyato & Koyama, ICLR 2018):
    D(x, y) = w^T h(x) + embed(y)^T h(x); unconditional (no embedding): w^T h(x)."""
    if class_embedding is None:
        return logit
    if labels is None:
        raise ValueError("this discriminator is class-conditional: call it with labels")
    return logit + (class_embedding(labels) * h).sum(dim=1)
