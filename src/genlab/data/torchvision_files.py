"""Datasets that torchvision reads from <data_dir>, with one-line errors when files are missing."""

from __future__ import annotations

import pickle
from abc import abstractmethod
from pathlib import Path
from typing import Any

from torchvision.datasets import VisionDataset

from genlab.data.base import ImageDataModule
from genlab.data.errors import DataError, DatasetNotFoundError
from genlab.data.memory import Split
from genlab.errors import first_line

# What torchvision's readers raise on a damaged file: a bad header (AssertionError in the
# IDX reader), a short file (RuntimeError, ValueError), a broken pickle, a missing key.
READ_ERRORS = (
    AssertionError, EOFError, KeyError, OSError, RuntimeError, ValueError, pickle.UnpicklingError,
)  # fmt: skip


class TorchvisionDataModule(ImageDataModule):
    """A train/test dataset loaded with one of torchvision's dataset classes.

    torchvision's own "Dataset not found" error names neither the files nor the
    folder, so the files are looked for first and a missing one is reported as
    a DatasetNotFoundError naming both.

    Args:
        download: fetch missing files with torchvision (needs network access).
        **kwargs: the ImageDataModule arguments.
    """

    files_note: str = ""  # said after the list of expected files, e.g. which forms are read

    def __init__(self, download: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.download = download

    @property
    @abstractmethod
    def folder(self) -> Path:
        """The folder that holds the dataset's files."""

    @property
    @abstractmethod
    def expected_files(self) -> list[str]:
        """Names of the files, in `folder`, that the dataset needs."""

    @abstractmethod
    def open_split(self, train: bool, download: bool) -> VisionDataset:
        """torchvision's dataset for the train or the test split."""

    @abstractmethod
    def to_split(self, dataset: VisionDataset) -> Split:
        """uint8 (N, C, H, W) images and int64 labels of a loaded torchvision dataset."""

    def missing_files(self) -> list[str]:
        """The expected files that are not in `folder`."""
        return [name for name in self.expected_files if not (self.folder / name).is_file()]

    def prepare_data(self) -> None:
        """Download missing files when `download` is on (Lightning calls this on one process)."""
        if self.download and self.missing_files():
            self.fetch()

    def fetch(self) -> None:
        """Download the dataset with torchvision; a failure names the folder and the files."""
        try:
            self.open_split(train=True, download=True)
        except (OSError, RuntimeError) as err:
            reason = first_line(err)
            raise DatasetNotFoundError(
                f"data={self.name}: download failed ({reason}); without network access place "
                f"{', '.join(self.expected_files)}{self.files_note} in {self.folder}"
            ) from err

    def load_raw(self) -> dict[str, Split]:
        if self.missing_files():
            if not self.download:
                holder = self.folder.relative_to(self.data_dir)
                raise DatasetNotFoundError(
                    f"data={self.name}: files not found: expected "
                    f"{', '.join(self.expected_files)}{self.files_note} in {self.folder}; "
                    f"put them there (or set paths.data_dir to a folder that holds {holder}/), "
                    "or set data.download=true with network access"
                )
            self.fetch()
        try:
            return {
                split: self.to_split(self.open_split(train=split == "train", download=False))
                for split in ("train", "test")
            }
        except READ_ERRORS as err:
            reason = first_line(err)
            raise DataError(
                f"data={self.name}: could not read the files in {self.folder} ({reason}); "
                "replace them with intact copies"
            ) from err
