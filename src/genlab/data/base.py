"""The base of every genlab datamodule: splits held as in-memory tensors in [-1, 1].

The datasets genlab targets (MNIST, CIFAR-10, small image folders) fit in memory,
so each split is decoded once into one tensor and served a batch at a time (one
gather per batch): no per-sample Python work and no worker processes in the training
loop. When the Trainer runs on CUDA, splits up to `DEVICE_SPLIT_BYTES` are copied to the
GPU once, so that batches never cross the host-to-device bus.
"""

from __future__ import annotations

from abc import abstractmethod

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from genlab.data.errors import DataConfigError, DataError
from genlab.data.memory import Split, hold_out, tensor_loader, to_signed_unit

SPLITS = ("train", "val", "test")
DEVICE_SPLIT_BYTES = 2 * 2**30  # larger splits stay in host memory (MNIST's 60,000: 188 MB)


class ImageDataModule(pl.LightningDataModule):
    """Images and labels from `load_raw()`, split and served as `(images, labels)` batches.

    `train` is split into train/val by `val_fraction` with a generator seeded by
    `split_seed`; `test` is the dataset's own test split where it has one, else a further
    `test_fraction` held out of `train` the same way, which neither training nor checkpoint
    selection (on `val`) ever sees. Images are float32 (B, C, H, W) in [-1, 1], labels int64.

    Args:
        data_dir: where the dataset's files live (the datasets read from disk).
        batch_size: images per batch; must not exceed the training split.
        num_workers: DataLoader worker processes (0 serves from the main process).
        val_fraction: share of the training split held out for validation, in (0, 1).
        test_fraction: share of the training split held out as the test split when the
            dataset has no test split of its own, in (0, 1); unused where it has one.
        split_seed: seeds the hold-out, so that it does not change with the run's seed.
        channels: image channels the run expects (1 grayscale, 3 RGB).
        image_size: height and width the run expects.
        pin_memory: page-locked batches, for faster copies to a GPU.
        train_limit: keep only this many training images (a random subset fixed by
            `split_seed`), to study the small-data regime; None keeps them all.
    """

    name: str = "images"

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        channels: int = 1,
        image_size: int = 28,
        pin_memory: bool = False,
        train_limit: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        if not 0.0 < val_fraction < 1.0:
            raise DataConfigError(
                f"data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}"
            )
        if not 0.0 < test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise DataConfigError(
                "data.test_fraction must be between 0 and 1 (exclusive) and leave training "
                f"images beside data.val_fraction, got test_fraction={test_fraction} with "
                f"val_fraction={val_fraction}"
            )
        if train_limit is not None and train_limit < 1:
            raise DataConfigError(f"data.train_limit must be >= 1 or null, got {train_limit}")
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.channels = channels
        self.image_size = image_size
        self.pin_memory = pin_memory
        self.train_limit = train_limit
        self._splits: dict[str, Split] | None = None
        self._on_device: dict[str, Split] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image, known from the config before any file is read."""
        return (self.channels, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int | None:
        """Number of labels, or None for unlabelled data."""
        return None

    @abstractmethod
    def load_raw(self) -> dict[str, Split]:
        """Decode the dataset to uint8 (N, C, H, W) images and int64 labels.

        Returns a `train` split and, where the dataset has one, a `test` split.
        """

    def setup(self, stage: str | None = None) -> None:
        """Decode, check and split the data once; later calls reuse it."""
        if self._splits is not None:
            return
        raw = self.load_raw()
        for split, (images, labels) in raw.items():
            self._check_split(split, images, labels)
        images, labels = raw["train"]
        test = raw.get("test")
        train_idx, val_idx, test_idx = hold_out(
            len(images), self.val_fraction, self.split_seed,
            test_fraction=0.0 if test is not None else self.test_fraction,
        )  # fmt: skip
        train_idx = train_idx[: self.train_limit]  # a random subset: hold_out shuffles
        if self.batch_size > len(train_idx):
            raise DataConfigError(
                f"data.batch_size={self.batch_size} is larger than the {len(train_idx)} "
                f"training images of {self.name} (after holding out {len(val_idx)} for "
                f"validation and {len(test_idx)} for test); lower data.batch_size"
            )
        splits = {
            "train": (to_signed_unit(images[train_idx]), labels[train_idx]),
            "val": (to_signed_unit(images[val_idx]), labels[val_idx]),
        }
        if test is None:
            test = (images[test_idx], labels[test_idx])
        splits["test"] = (to_signed_unit(test[0]), test[1])
        self._splits = splits

    def _check_split(self, split: str, images: Tensor, labels: Tensor) -> None:
        """Fail on images the configured networks cannot take, naming the key to change."""
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
        if len(labels) != len(images):
            raise DataError(
                f"{self.name} {split} split has {len(images)} images but {len(labels)} labels; "
                "the files do not belong together"
            )

    def _split(self, split: str) -> Split:
        if split not in SPLITS:
            raise DataConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.setup()
        assert self._splits is not None
        return self._splits[split]

    def real_images(self, split: str) -> Tensor:
        """All images of `split` (train, val or test): float32 (N, C, H, W) in [-1, 1].

        The datamodule's own tensor, not a copy: read it, do not modify it in place.
        """
        return self._split(split)[0]

    def real_labels(self, split: str) -> Tensor:
        """All int64 labels of `split`, in the order of `real_images(split)` (-1: none)."""
        return self._split(split)[1]

    def serving_device(self) -> torch.device | None:
        """The CUDA device to serve batches from, or None to serve them from host memory.

        Only with `num_workers=0`: worker processes cannot share CUDA tensors.
        """
        trainer = self.trainer
        if trainer is None or self.num_workers > 0:
            return None
        device = trainer.strategy.root_device
        return device if device.type == "cuda" else None

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        data, device = self._split(split), self.serving_device()
        workers, pin_memory = self.num_workers, self.pin_memory
        if device is not None and sum(t.nbytes for t in data) <= DEVICE_SPLIT_BYTES:
            if split not in self._on_device:
                self._on_device[split] = (data[0].to(device), data[1].to(device))
            data, workers, pin_memory = self._on_device[split], 0, False
        return tensor_loader(
            data, self.batch_size, train, workers, pin_memory,
            batches_done=lambda: batches_done_in_epoch(self.trainer),
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def batches_done_in_epoch(trainer: pl.Trainer | None) -> int:
    """Training batches of the current epoch that a run resumed mid-epoch has already done.

    Asked when a pass over the training data starts: while Lightning restarts from a
    checkpoint, its restored loop progress counts them; a checkpoint written after the
    epoch's last batch (ModelCheckpoint's) starts a new pass.
    """
    if trainer is None or not trainer.fit_loop.restarting:
        return 0
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return 0 if progress.is_last_batch else progress.current.completed
