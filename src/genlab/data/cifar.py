"""CIFAR-10 from torchvision's on-disk layout (<data_dir>/cifar-10-batches-py/)."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from genlab.data.base import ImageDataModule, RawSplit
from genlab.data.torchvision_files import open_torchvision_dataset


class _UncheckedCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 with its MD5 checks off: the files must exist but may differ.

    Used only with `data.verify_checksums=false`, for subsets or re-packed copies
    in the official pickle format (and the tiny copies the tests write).
    """

    train_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


class CIFAR10DataModule(ImageDataModule):
    """The 50,000/10,000 CIFAR-10 images (32x32 RGB); validation is held out of the 50,000."""

    name = "cifar10"

    def __init__(
        self, *args: object, download: bool = False, verify_checksums: bool = True, **kwargs: object
    ) -> None:
        kwargs.setdefault("channels", 3)
        kwargs.setdefault("image_size", 32)
        super().__init__(*args, **kwargs)
        self.download = download
        self.verify_checksums = verify_checksums

    @property
    def num_classes(self) -> int:
        return 10

    def prepare_data(self) -> None:
        if self.download:
            self.load_raw()

    def load_raw(self) -> dict[str, RawSplit]:
        cls = torchvision.datasets.CIFAR10 if self.verify_checksums else _UncheckedCIFAR10
        folder = Path(self.data_dir) / cls.base_folder
        expected = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        train, test = open_torchvision_dataset(
            cls, self.data_dir, folder, expected, self.download, f"data={self.name}"
        )
        return {
            split: (
                torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                torch.as_tensor(ds.targets, dtype=torch.long),
            )
            for split, ds in (("train", train), ("test", test))
        }
