"""NaN losses injected into real training steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from genlab.losses import GANLoss, gan_loss


def nan_on_training_calls(fn: Callable, bad_calls: set[int]) -> Callable:
    """Wrap `fn` so that its (first) output is NaN on the given calls made with gradients
    enabled (training steps; validation runs without), counted from 1."""
    calls = 0

    def poisoned(*args, **kwargs):
        nonlocal calls
        out = fn(*args, **kwargs)
        if not torch.is_grad_enabled():
            return out
        calls += 1
        if calls not in bad_calls:
            return out
        if isinstance(out, tuple):
            return (out[0] * float("nan"), *out[1:])
        return out * float("nan")

    return poisoned


def poison_gan_discriminator_loss(monkeypatch: pytest.MonkeyPatch, bad_calls: set[int]) -> None:
    def poisoned_gan_loss(name: str) -> GANLoss:
        loss = gan_loss(name)
        return GANLoss(nan_on_training_calls(loss.discriminator, bad_calls), loss.generator)

    monkeypatch.setattr("genlab.models.gan.gan_loss", poisoned_gan_loss)
