"""Tiny datasets written in the real on-disk formats that torchvision reads.

Known pixels make the [-1, 1] scaling checkable: in every MNIST image pixel (0, 0)
is 0, pixel (0, 1) is 255 and pixel (0, 2) is the image's index in its file; in
every CIFAR-10 image pixel (0, 0) is red 255, green 0, blue the index in its file.
Labels are the index modulo 10.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

MNIST_FILES = ("images-idx3-ubyte", "labels-idx1-ubyte")


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format of MNIST: magic (two zero bytes, 0x08 = uint8, ndim), big-endian dims.

    The magic reads as 2051 for the 3-d image files and 2049 for the 1-d label files.
    """
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(
    root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 10, gz: bool = False
) -> Path:
    """<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; returns root.

    `folder` is torchvision's class name: MNIST or FashionMNIST. `gz` writes only the
    compressed files, as the MNIST site serves them.
    """
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = 0, 255, np.arange(n) % 256
        for kind, array in zip(MNIST_FILES, (images, np.arange(n) % 10), strict=True):
            data, path = _idx_bytes(array), raw / f"{prefix}-{kind}"
            if gz:
                path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
            else:
                path.write_bytes(data)
    return root


def write_cifar10(root: Path, per_batch: int = 8, n_test: int = 8) -> Path:
    """<root>/cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta.

    Each batch is a dict with `data` (N, 3072) uint8 rows (the red, green, blue
    planes of a 32x32 image, each row-major) and `labels`. The official files were
    pickled by Python 2, whose str keys torchvision reads back as str (it loads with
    encoding="latin1"), so the keys here are str, not bytes.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def dump(name: str, n: int) -> None:
        data = rng.integers(0, 256, size=(n, 3, 32 * 32), dtype=np.uint8)
        data[:, 0, 0], data[:, 1, 0], data[:, 2, 0] = 255, 0, np.arange(n) % 256
        batch = {"data": data.reshape(n, -1), "labels": [int(i % 10) for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))

    for i in range(1, 6):
        dump(f"data_batch_{i}", per_batch)
    dump("test_batch", n_test)
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cats", "dogs"),
    per_class: int = 6,
    size: int = 40,
    flat: bool = False,
) -> Path:
    """<root>/<class>/<i>.png RGB `size`x`size` images, plus one grayscale `gray.png` in
    the first class; `flat` writes `per_class` RGB images and the grayscale one into
    root itself. Returns root.
    """
    rng = np.random.default_rng(0)
    folders = [root] if flat else [root / name for name in classes]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    gray = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
    Image.fromarray(gray).save(folders[0] / "gray.png")
    return root


def write_corrupt_images(folder: Path, n: int, stem: str = "broken") -> list[Path]:
    """`n` files named <stem><i>.png that hold no image; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}{i}.png" for i in range(n)]
    for path in paths:
        path.write_bytes(b"not a png")
    return paths
