"""LightningDataModules that serve images in [-1, 1] from one in-memory tensor per split."""

from genlab.data.base import ImageDataModule
from genlab.data.cifar import CIFAR10DataModule
from genlab.data.errors import DataConfigError, DataError, DatasetNotFoundError
from genlab.data.image_folder import ImageFolderDataModule
from genlab.data.mnist import FashionMNISTDataModule, MNISTDataModule
from genlab.data.mnist_embedded import MNISTEmbeddedDataModule

__all__ = [
    "CIFAR10DataModule",
    "DataConfigError",
    "DataError",
    "DatasetNotFoundError",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MNISTEmbeddedDataModule",
]
