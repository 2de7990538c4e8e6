"""The base of every genlab datamodule: splits held as in-memory tensors in [-1, 1].

The datasets genlab targets (MNIST, CIFAR-10, small image folders) fit in memory,
so each split is decoded once into one tensor and served by a TensorDataset:
no per-sample Python work and no worker processes in the training loop.
"""

from __future__ import annotations

from abc import abstractmethod

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from genlab.data.errors import DataError

# One split as decoded from disk: uint8 images (N, C, H, W) and int64 labels (-1: none).
RawSplit = tuple[Tensor, Tensor]


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (0 -> -1, 255 -> 1)."""
    return images.float().div_(127.5).sub_(1.0)


class ImageDataModule(pl.LightningDataModule):
    """Splits `train` into train/val with a fixed seed; `test` is the official test split
    where the dataset has one, else the validation split.

    Subclasses implement `load_raw()`. Batches are `(images, labels)`.
    """

    name = "images"

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        channels: int = 1,
        image_size: int = 28,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataError(f"data.batch_size must be >= 1, got {batch_size}")
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.channels = channels
        self.image_size = image_size
        self.pin_memory = pin_memory
        self._splits: dict[str, RawSplit] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image, known from the config before any file is read."""
        return (self.channels, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int | None:
        """Number of labels, or None for unlabelled data."""
        return None

    @abstractmethod
    def load_raw(self) -> dict[str, RawSplit]:
        """Decode the dataset: a `train` split and, where the dataset has one, `test`."""

    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        raw = self.load_raw()
        for split, (images, _) in raw.items():
            self._check_shape(split, images)
        images, labels = raw["train"]
        n_val = max(1, round(len(images) * self.val_fraction))
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[:n_val], order[n_val:]
        splits = {
            "train": (to_signed_unit(images[train_idx]), labels[train_idx]),
            "val": (to_signed_unit(images[val_idx]), labels[val_idx]),
        }
        if "test" in raw:
            splits["test"] = (to_signed_unit(raw["test"][0]), raw["test"][1])
        else:
            splits["test"] = splits["val"]
        n_train = len(splits["train"][0])
        if self.batch_size > n_train:
            raise DataError(
                f"data.batch_size={self.batch_size} is larger than the {n_train} training images "
                f"of {self.name}; lower data.batch_size"
            )
        self._splits = splits

    def _check_shape(self, split: str, images: Tensor) -> None:
        got, want = tuple(images.shape[1:]), self.image_shape
        if got[0] != want[0]:
            raise DataError(
                f"{self.name} {split} images have {got[0]} channel(s) but data.channels={want[0]}; "
                f"set data.channels={got[0]} or use data whose images have {want[0]}"
            )
        if got != want:
            raise DataError(
                f"{self.name} {split} images are {got[1]}x{got[2]} but data.image_size="
                f"{self.image_size}; set data.image_size={got[1]}"
            )

    def real_images(self, split: str) -> Tensor:
        """All images of `split` (train, val or test) as one float tensor in [-1, 1]."""
        self.setup()
        assert self._splits is not None
        if split not in self._splits:
            raise DataError(f"unknown split {split!r}; choose train, val or test")
        return self._splits[split][0]

    def _loader(self, split: str, train: bool) -> DataLoader:
        self.setup()
        assert self._splits is not None
        return DataLoader(
            TensorDataset(*self._splits[split]),
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
