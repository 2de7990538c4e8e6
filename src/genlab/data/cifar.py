"""CIFAR-10 from torchvision's on-disk layout (<data_dir>/cifar-10-batches-py/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import check_integrity

from genlab.data.errors import DataError
from genlab.data.memory import Split
from genlab.data.safe_pickle import load_data_pickle
from genlab.data.torchvision_files import TorchvisionDataModule

CIFAR10 = torchvision.datasets.CIFAR10


class PickleOnlyCIFAR10(CIFAR10):
    """torchvision's CIFAR10 with its per-file MD5 checks off, used to download the files.

    Why a subclass: torchvision checks every file's MD5 each time a split is built
    (all seven files, for each split), and only the official files pass. genlab
    checks the sums once itself, naming the files that differ (when
    `data.verify_checksums=true`). Downloading still checks the archive's MD5. The
    batches are read by `read_cifar10` instead: torchvision unpickles them with
    `pickle.load`, which would run code stored in a file that is not CIFAR-10's.
    """

    train_list: ClassVar[list[list[Any]]] = [[name, None] for name, _ in CIFAR10.train_list]
    test_list: ClassVar[list[list[Any]]] = [[name, None] for name, _ in CIFAR10.test_list]
    meta: ClassVar[dict[str, Any]] = {**CIFAR10.meta, "md5": None}


class CIFAR10Arrays(NamedTuple):
    """One split as torchvision's CIFAR10 holds it: (N, H, W, C) uint8 images and labels."""

    data: np.ndarray
    targets: list[int]


def read_cifar10(folder: Path, train: bool) -> CIFAR10Arrays:
    """The training (data_batch_1..5) or test batches, read with `load_data_pickle`."""
    batches = [
        load_data_pickle(folder / name)
        for name, _ in (CIFAR10.train_list if train else CIFAR10.test_list)
    ]
    images = np.vstack([batch["data"] for batch in batches]).reshape(-1, 3, 32, 32)
    labels = [int(label) for batch in batches for label in batch["labels"]]
    return CIFAR10Arrays(images.transpose(0, 2, 3, 1), labels)


class CIFAR10DataModule(TorchvisionDataModule):
    """The 50,000/10,000 CIFAR-10 images (32x32 RGB); validation is held out of the 50,000.

    Args:
        verify_checksums: check the files against the official MD5 sums; false for
            subsets or other data written in the CIFAR-10 pickle format.
        **kwargs: the TorchvisionDataModule arguments.
    """

    name = "cifar10"

    def __init__(self, verify_checksums: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("channels", 3)
        kwargs.setdefault("image_size", 32)
        super().__init__(**kwargs)
        self.verify_checksums = verify_checksums

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def folder(self) -> Path:
        return Path(self.data_dir) / CIFAR10.base_folder

    @property
    def expected_files(self) -> list[str]:
        return [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [
            CIFAR10.meta["filename"]
        ]

    def open_split(self, train: bool, download: bool) -> CIFAR10 | CIFAR10Arrays:
        if download:  # torchvision fetches the archive and checks its MD5
            return PickleOnlyCIFAR10(self.data_dir, train=train, download=True)
        return read_cifar10(self.folder, train)

    def to_split(self, dataset: CIFAR10 | CIFAR10Arrays) -> Split:
        # torchvision holds (N, H, W, C) uint8; genlab's tensors are (N, C, H, W).
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)

    def load_raw(self) -> dict[str, Split]:
        # Missing files are reported (or downloaded, and the archive checked) by the base.
        if self.verify_checksums and not self.missing_files():
            self.check_sums()
        return super().load_raw()

    def check_sums(self) -> None:
        """Compare every file with its official MD5 sum; name the ones that differ."""
        official = [*CIFAR10.train_list, *CIFAR10.test_list]
        official.append([CIFAR10.meta["filename"], CIFAR10.meta["md5"]])
        differ = [name for name, md5 in official if not check_integrity(self.folder / name, md5)]
        if differ:
            raise DataError(
                f"data={self.name}: {', '.join(differ)} in {self.folder} differ from the official "
                "CIFAR-10 files (MD5); re-download them, or set data.verify_checksums=false to "
                "read other data in the same format"
            )
