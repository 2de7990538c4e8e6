"""DiffAugment's operations against their definitions (Zhao et al. 2020, the authors' code):
each draw is per image, each axis has its own draw, and every shift or place in range occurs.

The images are built so that the transformation can be read back from the output: one lit
pixel gives the translation, the zeroed box gives the cutout, a flat grey image gives the
brightness shift. A non-square image tells the two axes apart.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from genlab.augment import DiffAugment, color, cutout, translation
from genlab.errors import ConfigError

IMAGES = 512  # enough that every shift or place in range is drawn (each has p >= 1/17)
H, W = 8, 16  # unequal sides: a swap of the axes changes the ranges


def lit_pixel(row: int, col: int, n: int = IMAGES) -> Tensor:
    """`n` images of zeros with one pixel set to 1 at (row, col)."""
    images = torch.zeros(n, 1, H, W)
    images[:, :, row, col] = 1.0
    return images


def pixel_position(images: Tensor) -> tuple[Tensor, Tensor]:
    """The (row, col) of the single lit pixel of each image."""
    flat = images.flatten(1).argmax(dim=1)
    return flat // W, flat % W


def test_translation_draws_each_axis_over_its_own_range_per_image() -> None:
    torch.manual_seed(0)
    moved = translation(lit_pixel(4, 8), ratio=0.25)  # up to 2 rows and 4 columns each way
    assert moved.sum(dim=(1, 2, 3)).tolist() == [1.0] * IMAGES  # one pixel moved, not lost
    rows, cols = pixel_position(moved)
    dy, dx = rows - 4, cols - 8
    assert sorted(set(dy.tolist())) == [-2, -1, 0, 1, 2]  # vertical shifts, all of them
    assert sorted(set(dx.tolist())) == [-4, -3, -2, -1, 0, 1, 2, 3, 4]
    # independent draws per axis: every combination of a vertical and a horizontal shift occurs
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) == 5 * 9
    # per image: the channels of one image move together
    rgb = translation(lit_pixel(4, 8).expand(-1, 3, -1, -1).clone(), ratio=0.25)
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 0], rgb[:, 2])


def test_translation_pads_with_zeros_what_it_shifts_in() -> None:
    torch.manual_seed(0)
    moved = translation(torch.ones(IMAGES, 1, H, W), ratio=0.25)
    zero_rows = (moved == 0).all(dim=3).sum(dim=(1, 2))  # rows shifted in from outside
    zero_cols = (moved == 0).all(dim=2).sum(dim=(1, 2))
    assert sorted(set(zero_rows.tolist())) == [0, 1, 2]
    assert sorted(set(zero_cols.tolist())) == [0, 1, 2, 3, 4]
    assert set(moved.unique().tolist()) == {0.0, 1.0}


def zero_box(images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per image of ones with one zeroed box: its top row, left column, height and width."""
    zero = images[:, 0] == 0
    rows, cols = zero.any(dim=2), zero.any(dim=1)
    top = rows.float().argmax(dim=1)
    left = cols.float().argmax(dim=1)
    return top, left, rows.sum(dim=1), cols.sum(dim=1)


def test_cutout_zeros_one_box_of_ratio_of_each_side_placed_per_axis_per_image() -> None:
    torch.manual_seed(0)
    out = cutout(torch.ones(IMAGES, 1, H, W), ratio=0.5)  # a 4 x 8 box
    top, left, height, width = zero_box(out)
    inside = (height == 4) & (width == 8)  # not clipped by a border
    assert inside.sum() > IMAGES // 8
    assert ((out[:, 0] == 0).sum(dim=(1, 2)) == height * width).all()  # one solid box
    assert height.max() == 4 and width.max() == 8 and (height > 0).all() and (width > 0).all()
    # the box's centre is drawn per image over every row 0..H and column 0..W, per axis
    centre_row = torch.where(top > 0, top + 4 // 2, top + height - 4 // 2)
    centre_col = torch.where(left > 0, left + 8 // 2, left + width - 8 // 2)
    assert sorted(set(centre_row.tolist())) == list(range(H + 1))
    assert sorted(set(centre_col.tolist())) == list(range(W + 1))
    assert len(set(zip(centre_row.tolist(), centre_col.tolist(), strict=True))) > 100


def test_cutout_zeros_the_same_box_in_every_channel() -> None:
    torch.manual_seed(0)
    out = cutout(torch.ones(64, 3, H, W), ratio=0.5)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def reference_color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    """The authors' rand_brightness, rand_saturation, rand_contrast with the given draws."""
    x = x + (brightness - 0.5)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * (saturation * 2) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * (contrast + 0.5) + image_mean


def test_color_is_the_reference_brightness_saturation_and_contrast() -> None:
    x = torch.rand(16, 3, H, W) * 2 - 1
    torch.manual_seed(3)
    out = color(x)
    torch.manual_seed(3)
    draws = [torch.rand(16, 1, 1, 1) for _ in range(3)]
    assert torch.allclose(out, reference_color(x, *draws), atol=1e-6)


def test_color_shifts_the_brightness_of_each_image_by_its_own_uniform_draw() -> None:
    # A flat grey image has nothing to saturate or contrast: only the brightness shift stays.
    torch.manual_seed(0)
    grey = torch.full((IMAGES, 3, H, W), 0.2)
    shift = color(grey) - grey
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)
    values = per_image[:, 0]
    assert values.min() >= -0.5 and values.max() < 0.5
    assert values.min() < -0.45 and values.max() > 0.45  # the whole range of +-0.5
    assert values.unique().numel() == IMAGES  # a draw per image


@pytest.mark.parametrize("policy", [["color"], ["translation"], ["cutout"]])
def test_each_call_draws_afresh(policy: list[str]) -> None:
    augment = DiffAugment(policy)
    images = torch.rand(8, 3, H, W) * 2 - 1
    assert not torch.equal(augment(images), augment(images))


def test_diffaugment_passes_gradients_and_rejects_unknown_operations() -> None:
    images = torch.rand(4, 3, 8, 8, requires_grad=True)
    DiffAugment(["color", "translation", "cutout"])(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="unknown operations \\['colour'\\]"):
        DiffAugment(["colour"])
