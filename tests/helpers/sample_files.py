"""Samples and references written in the formats other code uses: folders of PNGs, `.npz`
arrays (uint8 NHWC `arr_0`, labels `arr_1`), and real digits to fill them with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from genlab.data import MNISTEmbeddedDataModule


def as_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] (or uint8) as uint8 (N, H, W, C)."""
    if images.dtype != torch.uint8:
        images = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return images.permute(0, 2, 3, 1).numpy()


def write_png_folder(root: Path, images: Tensor, labels: Tensor | None = None) -> Path:
    """One PNG per image; in subfolders named by the label (`3/000007.png`) when labelled."""
    pixels = as_uint8(images)
    for i, image in enumerate(pixels):
        folder = root if labels is None else root / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        mode = "L" if image.shape[-1] == 1 else "RGB"
        Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode).save(
            folder / f"{i:06d}.png"
        )
    return root


def write_npz(path: Path, images: Tensor, labels: Tensor | None = None) -> Path:
    """`arr_0` uint8 NHWC (and `arr_1` int64 labels), as guided-diffusion writes samples."""
    arrays = {"arr_0": as_uint8(images)}
    if labels is not None:
        arrays["arr_1"] = labels.numpy().astype(np.int64)
    np.savez(path, **arrays)
    return path


def digits(split: str, n: int | None = None) -> tuple[Tensor, Tensor]:
    """The first `n` embedded MNIST digits of `split` (train: 4,000, test: 500), in [-1, 1],
    and their labels; the splits of data=mnist_embedded."""
    datamodule = MNISTEmbeddedDataModule(data_dir="unused")
    return datamodule.real_images(split)[:n], datamodule.real_labels(split)[:n]
