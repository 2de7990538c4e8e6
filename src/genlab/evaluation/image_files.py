"""Image sets read from files: folders of images and arrays in the field's `.npz`/`.npy` layout.

Arrays follow the convention of OpenAI's guided-diffusion and its ADM evaluation suite:
uint8 pixels in NHWC order under the key `arr_0`, class labels (for conditional samples)
under `arr_1`. Folders are read as `data=image_folder` reads training images: every file
converted to the wanted channels (L or RGB), its shorter side resized with antialiasing,
then centre-cropped to a square.

Pixels stay uint8 (N, C, H, W) in memory and are scaled to [-1, 1] one batch at a time.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from genlab.data.image_files import DEFAULT_EXTENSIONS, find_images
from genlab.data.image_folder import DECODE_ERRORS, decode_files, named_files
from genlab.data.memory import to_signed_unit
from genlab.errors import ConfigError, GenlabError, first_line

ARRAY_SUFFIXES = (".npz", ".npy")
IMAGES_KEY = "arr_0"  # guided-diffusion / ADM: the samples
LABELS_KEY = "arr_1"  # ... and, for a class-conditional model, their labels


@dataclass
class ImageSet:
    """Images (uint8 pixels, or floats in [-1, 1]) (N, C, H, W) and their labels (or None)."""

    images: Tensor
    labels: Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Tensor) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], labels)


def signed_unit(images: Tensor) -> Tensor:
    """Images as float32 in [-1, 1]: uint8 pixels are scaled, floats are passed through."""
    return to_signed_unit(images) if images.dtype == torch.uint8 else images.float()


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] as uint8 pixels, rounded as PNG writers and the Inception extractor do."""
    if images.dtype == torch.uint8:
        return images
    return ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def to_nhwc_array(images: Tensor) -> np.ndarray:
    """uint8 (N, H, W, C) numpy pixels: the layout of the field's `.npz` sample files."""
    return to_uint8(images).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def folder_labels(labels: list[int], classes: list[str]) -> Tensor | None:
    """Class labels of a folder with one subfolder per class, or None for a flat folder (or a
    single subfolder, such as genlab-sample's `samples/`).

    Subfolders named by integers (`0/ ... 9/`) give those integers, so that `10/` is class 10
    and not the third name in sorted order; other names give their index in sorted order
    (torchvision's ImageFolder rule).
    """
    if len(classes) < 2:
        return None
    if all(name.isdigit() for name in classes):
        return torch.tensor([int(classes[label]) for label in labels], dtype=torch.long)
    return torch.tensor(labels, dtype=torch.long)


def first_image_shape(path: Path, key: str) -> tuple[int, int, int]:
    """(C, H, W) of a folder's first image: 1 channel for grayscale files, else 3."""
    files, _ = find_images(path, DEFAULT_EXTENSIONS, key=key)
    try:
        with Image.open(files[0][0]) as image:
            channels = 1 if image.mode in ("1", "L", "I", "I;16", "F") else 3
            return (channels, image.height, image.width)
    except DECODE_ERRORS:
        raise GenlabError(f"{key}: {files[0][0]} is not an image file; remove it") from None


def read_folder(path: Path, shape: tuple[int, int, int], key: str) -> ImageSet:
    """Every image below `path` (png, jpg, webp, ...), decoded to `shape` = (C, S, S)."""
    channels, height, width = shape
    if height != width or channels not in (1, 3):
        raise ConfigError(
            f"{key}={path}: folders are read as square grayscale or RGB images, but the "
            f"comparison's images are {shape} (C, H, W)"
        )
    files, classes = find_images(path, DEFAULT_EXTENSIONS, key=key)
    images, labels, bad = decode_files(files, channels, height)
    if bad:
        raise GenlabError(
            f"{len(bad)} file(s) in {key}={path} are not readable images: {named_files(bad)}; "
            "remove them"
        )
    return ImageSet(torch.stack(images), folder_labels(labels, classes))


def load_arrays(path: Path, key: str) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` (by name) or `.npy` (as `arr_0`) file, read without pickle."""
    try:
        if path.suffix == ".npy":
            return {IMAGES_KEY: np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as file:
            return {name: file[name] for name in file.files}
    except FileNotFoundError:
        raise GenlabError(f"{key}={path} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        reason = first_line(err)
        raise GenlabError(
            f"{key}={path} cannot be read as a numpy {path.suffix} file (pickled object arrays "
            f"are refused): {reason}"
        ) from None


def check_pixels(array: np.ndarray, what: str) -> None:
    """One line unless `array` is uint8 NHWC with 1 or 3 channels."""
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        hint = ""
        if array.ndim == 4 and array.shape[1] in (1, 3):
            hint = " (this looks like NCHW: save array.transpose(0, 2, 3, 1))"
        elif array.ndim == 3:
            hint = " (grayscale without a channel axis: save array[..., None])"
        raise GenlabError(
            f"{what} has shape {array.shape}, but images must be (N, H, W, C) with C = 1 or 3{hint}"
        )
    if array.dtype != np.uint8:
        raise GenlabError(
            f"{what} holds {array.dtype} values, but images must be uint8 pixels 0..255 (the "
            "convention of the field's .npz files); convert with "
            "((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8) for images in [-1, 1]"
        )
    if len(array) == 0:
        raise GenlabError(f"{what} holds no images")


def read_array(path: Path, key: str, images_key: str, labels_key: str | None) -> ImageSet:
    """Images (and labels, when `labels_key` is in the file) of an `.npz` or `.npy` file."""
    arrays = load_arrays(path, key)
    if images_key not in arrays:
        raise GenlabError(
            f"{key}={path} has no array {images_key!r} (it holds {', '.join(arrays) or 'none'}); "
            f"name the images' key with {key}_key=..."
        )
    pixels = arrays[images_key]
    check_pixels(pixels, f"{key}={path} [{images_key}]")
    labels = None
    if labels_key is not None and labels_key in arrays:
        labels = arrays[labels_key]
        if labels.shape != (len(pixels),) or not np.issubdtype(labels.dtype, np.integer):
            raise GenlabError(
                f"{key}={path} [{labels_key}] must hold one integer class label per image, "
                f"got {labels.dtype} values of shape {labels.shape} for {len(pixels)} images"
            )
        labels = torch.from_numpy(labels.astype(np.int64))
    # A fresh C-order copy: with one channel, the transposed view already counts as
    # contiguous, but its strides make convolutions take their channels-last path, whose
    # float32 results differ in the last bits from those of the same images laid out NCHW.
    images = torch.from_numpy(np.array(pixels.transpose(0, 3, 1, 2), order="C"))
    return ImageSet(images, labels)
