"""Tiny datasets written in the real on-disk formats that torchvision reads."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of MNIST: magic (0x08 = uint8, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 10) -> Path:
    """<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte with random digits.

    Pixel 0 of every image is 0 and pixel 1 is 255, so the scaled range is known.
    """
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = 0, 255
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


def write_cifar10(root: Path, per_batch: int = 8, n_test: int = 8) -> Path:
    """<root>/cifar-10-batches-py/ with five training pickles, a test pickle and the metadata."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def dump(name: str, n: int) -> None:
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        batch = {"data": data, "labels": [int(i % 10) for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)

    for i in range(1, 6):
        dump(f"data_batch_{i}", per_batch)
    dump("test_batch", n_test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return root


def write_image_folder(
    root: Path, classes: tuple[str, ...] = ("cats", "dogs"), per_class: int = 6, size: int = 40
) -> Path:
    """<root>/<class>/<i>.png RGB images of `size`x`size` (a grayscale one among them)."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, size=(size, size), dtype=np.uint8)).save(
        root / classes[0] / "gray.png"
    )
    return root
