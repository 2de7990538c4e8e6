"""MNIST and Fashion-MNIST from torchvision's on-disk layout (<data_dir>/<Name>/raw/*-ubyte)."""

from __future__ import annotations

from pathlib import Path

import torchvision
from torchvision.datasets.utils import extract_archive

from genlab.data.errors import DataError
from genlab.data.memory import Split
from genlab.data.torchvision_files import TorchvisionDataModule


class MNISTDataModule(TorchvisionDataModule):
    """The 60,000/10,000 MNIST digits (28x28 grayscale); validation is held out of the 60,000.

    Reads the four IDX files torchvision reads. Where only the `.gz` copies from the
    MNIST site are present, they are decompressed next to themselves first, as
    torchvision's own download does.
    """

    name = "mnist"
    dataset_class: type[torchvision.datasets.MNIST] = torchvision.datasets.MNIST
    files_note = " (or each as .gz)"

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def folder(self) -> Path:
        # torchvision's raw_folder: <root>/<class name>/raw
        return Path(self.data_dir) / self.dataset_class.__name__ / "raw"

    @property
    def expected_files(self) -> list[str]:
        return [Path(url).name.removesuffix(".gz") for url, _ in self.dataset_class.resources]

    def open_split(self, train: bool, download: bool) -> torchvision.datasets.MNIST:
        return self.dataset_class(self.data_dir, train=train, download=download)

    def to_split(self, dataset: torchvision.datasets.MNIST) -> Split:
        return dataset.data.unsqueeze(1), dataset.targets.long()

    def load_raw(self) -> dict[str, Split]:
        for name in self.missing_files():
            packed = self.folder / f"{name}.gz"
            if packed.is_file():
                try:
                    extract_archive(str(packed), str(self.folder))
                except (EOFError, OSError) as err:
                    raise DataError(
                        f"data={self.name}: could not decompress {packed} ({err}); "
                        "replace it with an intact copy"
                    ) from err
        return super().load_raw()


class FashionMNISTDataModule(MNISTDataModule):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing."""

    name = "fashion_mnist"
    dataset_class = torchvision.datasets.FashionMNIST
