"""MNIST and Fashion-MNIST from torchvision's on-disk layout (<data_dir>/<Name>/raw/*-ubyte)."""

from __future__ import annotations

from pathlib import Path

import torchvision

from genlab.data.base import ImageDataModule, RawSplit
from genlab.data.torchvision_files import open_torchvision_dataset


class MNISTDataModule(ImageDataModule):
    """The 60,000/10,000 MNIST digits; validation is held out of the 60,000."""

    name = "mnist"
    dataset_class: type[torchvision.datasets.MNIST] = torchvision.datasets.MNIST

    def __init__(self, *args: object, download: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.download = download

    @property
    def num_classes(self) -> int:
        return 10

    def prepare_data(self) -> None:
        if self.download:
            self.load_raw()

    def load_raw(self) -> dict[str, RawSplit]:
        cls = self.dataset_class
        folder = Path(self.data_dir) / cls.__name__ / "raw"
        expected = [Path(url).name.removesuffix(".gz") for url, _ in cls.resources]
        train, test = open_torchvision_dataset(
            cls, self.data_dir, folder, expected, self.download, f"data={self.name}"
        )
        return {
            split: (ds.data.unsqueeze(1), ds.targets.long())
            for split, ds in (("train", train), ("test", test))
        }


class FashionMNISTDataModule(MNISTDataModule):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing."""

    name = "fashion_mnist"
    dataset_class = torchvision.datasets.FashionMNIST
