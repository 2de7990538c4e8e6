"""Datamodules loading tiny datasets written in torchvision's on-disk formats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.data import (
    CIFAR10DataModule,
    DataError,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    MNISTEmbeddedDataModule,
)
from tests.helpers.fake_datasets import write_cifar10, write_image_folder, write_mnist


def first_batch(dm) -> tuple[torch.Tensor, torch.Tensor]:
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def test_mnist_embedded_is_real_mnist() -> None:
    dm = MNISTEmbeddedDataModule(data_dir="unused", batch_size=32, val_fraction=0.1)
    dm.setup()
    train, val = dm.real_images("train"), dm.real_images("val")
    assert train.shape == (4500, 1, 28, 28) and val.shape == (500, 1, 28, 28)
    assert train.dtype == torch.float32
    assert train.min() == -1.0 and train.max() == 1.0
    # Real digits: mostly background, a stroke in the middle.
    assert (train[:, :, 14, 14] > 0).float().mean() > 0.3
    assert (train[:, :, 0, 0] == -1).all()
    images, labels = first_batch(dm)
    assert images.shape == (32, 1, 28, 28) and labels.dtype == torch.long
    assert set(dm._splits["val"][1].tolist()) == set(range(10))


def test_split_is_fixed_by_split_seed_not_by_run_seed() -> None:
    a = MNISTEmbeddedDataModule(data_dir="unused", split_seed=0)
    torch.manual_seed(123)
    b = MNISTEmbeddedDataModule(data_dir="unused", split_seed=0)
    c = MNISTEmbeddedDataModule(data_dir="unused", split_seed=1)
    assert torch.equal(a.real_images("val"), b.real_images("val"))
    assert not torch.equal(a.real_images("val"), c.real_images("val"))


@pytest.mark.parametrize(
    ("cls", "folder"), [(MNISTDataModule, "MNIST"), (FashionMNISTDataModule, "FashionMNIST")]
)
def test_mnist_formats_load_through_torchvision(tmp_path: Path, cls, folder: str) -> None:
    write_mnist(tmp_path, folder=folder, n_train=40, n_test=10)
    dm = cls(data_dir=str(tmp_path), batch_size=8, val_fraction=0.25)
    images, _ = first_batch(dm)
    assert images.shape == (8, 1, 28, 28)
    assert len(dm.real_images("train")) == 30 and len(dm.real_images("val")) == 10
    test = dm.real_images("test")
    assert len(test) == 10
    assert test[:, 0, 0, 0].eq(-1).all() and test[:, 0, 0, 1].eq(1).all()
    assert sorted(dm._splits["test"][1].tolist()) == list(range(10))


def test_missing_mnist_names_files_and_folder(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=8)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "data.download=true" in message


def test_cifar10_pickles_load(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=8, n_test=8)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4, verify_checksums=False)
    images, _ = first_batch(dm)
    assert images.shape == (4, 3, 32, 32)
    assert len(dm.real_images("train")) + len(dm.real_images("val")) == 40
    assert len(dm.real_images("test")) == 8


def test_cifar10_checksums_reject_foreign_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="could not be read"):
        CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4).setup()


def test_missing_cifar10_names_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_1.*cifar-10-batches-py"):
        CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4).setup()


def test_wrong_channel_count_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4, verify_checksums=False, channels=1)
    with pytest.raises(DataError, match=r"3 channel.*data.channels=1"):
        dm.setup()


def test_batch_larger_than_dataset_is_named(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=20)
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=64, val_fraction=0.5)
    with pytest.raises(DataError, match=r"data.batch_size=64 is larger than the 10 training"):
        dm.setup()


def test_image_folder_with_classes(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "imgs", per_class=6, size=40)
    dm = ImageFolderDataModule(
        data_dir="unused", path=str(tmp_path / "imgs"), batch_size=4, channels=3, image_size=32,
        val_fraction=0.2,
    )  # fmt: skip
    images, labels = first_batch(dm)
    assert images.shape == (4, 3, 32, 32)
    assert dm.num_classes == 2 and set(labels.tolist()) <= {0, 1}
    assert len(dm.real_images("train")) + len(dm.real_images("val")) == 13  # 12 RGB + 1 grayscale


def test_image_folder_flat_grayscale(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "imgs", classes=("x",), per_class=5)
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (tmp_path / "imgs" / "x").iterdir():
        p.rename(flat / p.name)
    dm = ImageFolderDataModule(
        data_dir="unused", path=str(flat), batch_size=2, channels=1, image_size=16
    )
    images, labels = first_batch(dm)
    assert images.shape == (2, 1, 16, 16) and (labels == -1).all()


def test_image_folder_empty_and_unreadable(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no images"):
        ImageFolderDataModule(data_dir="", path=str(tmp_path / "empty"), batch_size=2).setup()
    folder = write_image_folder(tmp_path / "imgs", per_class=4)
    for i in range(5):
        (folder / "cats" / f"broken{i}.png").write_bytes(b"not a png")
    dm = ImageFolderDataModule(data_dir="", path=str(folder), batch_size=2, image_size=32)
    with pytest.raises(DataError) as err:
        dm.setup()
    assert "5 unreadable" in str(err.value) and "broken0.png" in str(err.value)
    assert "and 2 more" in str(err.value) and "data.skip_bad_files=true" in str(err.value)
    skipping = ImageFolderDataModule(
        data_dir="", path=str(folder), batch_size=2, image_size=32, skip_bad_files=True
    )
    skipping.setup()
    assert skipping.n_skipped == 5
    assert len(skipping.real_images("train")) + len(skipping.real_images("val")) == 9
