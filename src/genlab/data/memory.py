"""In-memory splits: uint8 pixels scaled once to [-1, 1], a seeded hold-out, tensor loaders."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

# One split: images (N, C, H, W) and int64 labels (-1 where the data has none).
Split = tuple[Tensor, Tensor]


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (0 -> -1, 255 -> 1), the range of tanh."""
    return images.float().div_(127.5).sub_(1.0)


def hold_out(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train, val) indices of a random split of `n` items; the same `seed` gives the same split.

    A generator of its own keeps the split independent of the run's global seed.
    """
    n_val = max(1, round(n * fraction))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:], order[:n_val]


class BatchTensorDataset(TensorDataset):
    """A TensorDataset that the DataLoader reads a whole batch at a time.

    The DataLoader calls `__getitems__` with a batch's indices when a dataset has one:
    one gather per tensor, where `__getitem__` per image and a collate would do
    Python work for every image of every batch.
    """

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, ...]:
        index = torch.as_tensor(indices, device=self.tensors[0].device)
        return tuple(tensor[index] for tensor in self.tensors)


def whole_batch(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The collate step of a BatchTensorDataset: the batch is already one tensor per field."""
    return batch


def tensor_loader(
    split: Split, batch_size: int, train: bool, num_workers: int, pin_memory: bool
) -> DataLoader:
    """Batches straight from the tensors: training shuffles and drops the ragged last batch.

    The tensors may live on the GPU (then `num_workers` must be 0 and `pin_memory` off).
    """
    return DataLoader(
        BatchTensorDataset(*split),
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        collate_fn=whole_batch,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
