"""Pictures of a trained model that dashboards, reports and the notebook share.

Each function returns one image grid, a float (C, H, W) tensor in [0, 1], ready for
`torchvision.utils.save_image`, a logger, or matplotlib (after `.permute(1, 2, 0)`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import make_grid

from genlab.models.base import GenerativeModule
from genlab.models.capabilities import Encodes
from genlab.nets.layers import evaluating


def to_grid(images: Tensor, nrow: int) -> Tensor:
    """Images in [-1, 1] -> one grid in [0, 1] with a 2-pixel border."""
    return make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of `a` and `b` at fractions `t` (White 2016).

    Gaussian latents concentrate near a sphere; a straight line between two of them
    passes through its low-norm interior, which the generator rarely saw in training.
    Returns (len(t), *a.shape) with a at t=0 and b at t=1; rows of images are slerped as
    flat vectors.
    """
    if a.dim() > 2:
        shape = a.shape
        path = slerp(a.flatten(1), b.flatten(1), t)
        return path.view(len(t), *shape)
    a_unit, b_unit = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_unit * b_unit).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7))  # angle per row
    t = t.view(-1, *[1] * a.dim())
    sin_omega = torch.sin(omega).unsqueeze(-1)
    return (
        torch.sin((1 - t) * omega.unsqueeze(-1)) * a + torch.sin(t * omega.unsqueeze(-1)) * b
    ) / sin_omega


def class_per_row(model: GenerativeModule, n: int, per_row: int) -> Tensor | None:
    """Labels that give a conditional model's grid of `n` images one class per row
    (row i: class i mod num_classes); None for an unconditional model."""
    if not model.conditional:
        return None
    return (torch.arange(n, device=model.device) // per_row) % model.num_classes


@torch.no_grad()
def latent_interpolation(
    model: GenerativeModule, rows: int = 8, steps: int = 10, seed: int = 0
) -> Tensor:
    """A grid whose every row walks (slerp) from one prior noise to another in `steps` images.

    The noises come from a CPU generator seeded with `seed`: the same strips every epoch.
    A conditional model keeps one class per row (row i shows class i mod num_classes).
    Sampled with `model.validation_sampling`, as the other training-time pictures.
    """
    generator = torch.Generator().manual_seed(seed)
    ends = model.sample_noise(2 * rows, generator).cpu()
    path = slerp(ends[:rows], ends[rows:], torch.linspace(0, 1, steps))  # (steps, rows, ...)
    z = path.transpose(0, 1).reshape(rows * steps, *ends.shape[1:]).to(model.device)
    labels = class_per_row(model, rows * steps, steps)
    settings = model.sampling_settings(**model.validation_sampling)
    with evaluating(model):
        images = model.sample(z, labels, generator=generator, **settings)
    return to_grid(images.clamp(-1, 1), nrow=steps)


@torch.no_grad()
def reconstructions(
    model: Encodes, images: Tensor, nrow: int = 8, labels: Tensor | None = None
) -> Tensor:
    """Rows of originals, each followed by a row of their reconstructions sample(encode(x)).

    Needs a model that `Encodes` (a VAE: the mean of q(z|x)); a conditional one also needs
    the images' `labels`, which both its encoder and decoder take.
    """
    if labels is not None:
        labels = labels.to(model.device)
    with evaluating(model):
        latents = model.encode(images.to(model.device), labels)
        recon = model.sample(latents, labels).clamp(-1, 1).cpu()
    originals = images.cpu()
    pairs = [
        part
        for start in range(0, len(originals), nrow)
        for part in (originals[start : start + nrow], recon[start : start + nrow])
    ]
    return to_grid(torch.cat(pairs), nrow=nrow)
