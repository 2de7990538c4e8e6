"""Any folder of images, decoded once into an in-memory tensor of square images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from genlab.data.base import ImageDataModule
from genlab.data.errors import DataConfigError, DataError
from genlab.data.image_files import DEFAULT_EXTENSIONS, find_images, normalise_extensions
from genlab.data.memory import Split

log = logging.getLogger(__name__)

SHOWN_BAD_FILES = 3  # unreadable files named in the error; the rest are counted
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)


def decode_square(path: Path, channels: int, size: int) -> Tensor:
    """uint8 (channels, size, size): converted to L or RGB, the shorter side resized to
    `size` (antialiased), then centre-cropped. EXIF orientation is applied first, so
    that photos stand as they were taken.
    """
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as image:
        image.draft(mode, (size, size))  # JPEG: decode at a reduced scale when large
        image = ImageOps.exif_transpose(image).convert(mode)
        pixels = TF.pil_to_tensor(image)
    pixels = TF.resize(pixels, [size], antialias=True)
    return TF.center_crop(pixels, [size, size])


def decode_files(
    files: list[tuple[Path, int]], channels: int, size: int
) -> tuple[list[Tensor], list[int], list[Path]]:
    """(images, labels, unreadable files): every file decoded with `decode_square`."""
    images, labels, bad = [], [], []
    for file, label in files:
        try:
            images.append(decode_square(file, channels, size))
            labels.append(label)
        except DECODE_ERRORS:
            bad.append(file)
    return images, labels, bad


def named_files(bad: list[Path]) -> str:
    """The first SHOWN_BAD_FILES paths of `bad`, and how many more, for an error message."""
    shown = ", ".join(str(p) for p in bad[:SHOWN_BAD_FILES])
    return shown + (f" and {len(bad) - SHOWN_BAD_FILES} more" if len(bad) > SHOWN_BAD_FILES else "")


class ImageFolderDataModule(ImageDataModule):
    """The images of `path`, flat or with one subfolder per class (torchvision's ImageFolder).

    Every image is decoded once at setup into `channels` (1: L, 3: RGB) at
    `image_size` x `image_size`. Labels are class indices (see `find_images`), or -1
    for a flat folder. There is no test split: `test` is a further held-out share
    (`test_fraction`).

    Args:
        path: the folder to read.
        skip_bad_files: skip files that cannot be decoded (their count is `n_skipped`)
            instead of failing.
        extensions: file endings to read, case-insensitive.
        **kwargs: the ImageDataModule arguments (`data_dir` is unused).
    """

    name = "image_folder"

    def __init__(
        self,
        path: str,
        skip_bad_files: bool = False,
        extensions: tuple[str, ...] | list[str] = DEFAULT_EXTENSIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.channels not in (1, 3):
            raise DataConfigError(
                f"data.channels must be 1 (grayscale) or 3 (RGB) for an image folder, "
                f"got {self.channels}"
            )
        self.path = Path(path)
        self.skip_bad_files = skip_bad_files
        self.extensions = normalise_extensions(extensions)
        self.classes: list[str] = []
        self.n_skipped = 0

    @property
    def num_classes(self) -> int | None:
        """Number of class subfolders (known after setup); None for a flat folder."""
        return len(self.classes) or None

    def load_raw(self) -> dict[str, Split]:
        files, self.classes = find_images(self.path, self.extensions)
        images, labels, bad = decode_files(files, self.channels, self.image_size)
        if bad and not self.skip_bad_files:
            raise DataError(
                f"{len(bad)} unreadable image file(s) in {self.path}: {named_files(bad)}; "
                "remove them or set data.skip_bad_files=true"
            )
        self.n_skipped = len(bad)
        if bad:
            log.warning("skipped %d unreadable image file(s) in %s", len(bad), self.path)
        if not images:
            raise DataError(f"none of the {len(files)} image file(s) in {self.path} could be read")
        return {"train": (torch.stack(images), torch.tensor(labels, dtype=torch.long))}
