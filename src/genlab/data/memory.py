"""In-memory splits: uint8 pixels scaled once to [-1, 1], a seeded hold-out, tensor loaders."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

# One split: images (N, C, H, W) and int64 labels (-1 where the data has none).
Split = tuple[Tensor, Tensor]


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (0 -> -1, 255 -> 1), the range of tanh."""
    return images.float().div_(127.5).sub_(1.0)


def hold_out(
    n: int, val_fraction: float, seed: int, test_fraction: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """(train, val, test) indices of a random split of `n` items; the same `seed` gives the
    same split. `test` is empty when `test_fraction` is 0.

    Both fractions are of all `n` items. Validation takes the first items of one seeded
    permutation and test the next ones, so adding a test split leaves validation unchanged.
    A generator of its own keeps the split independent of the run's global seed.
    """
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


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


class EpochShuffleSampler(RandomSampler):
    """A fresh random order every epoch that depends only on (seed, epoch).

    RandomSampler draws its order from the global RNG, so the order of a resumed run
    would depend on everything else that drew random numbers before it; this one is
    replayed exactly. Lightning calls `set_epoch` at the start of every epoch (as for
    DistributedSampler), and, being a RandomSampler, under DDP it is replaced by
    Lightning's DistributedSampler, whose order depends on (seed, epoch) too.
    """

    def __init__(self, data_source: TensorDataset, seed: int) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.Generator().manual_seed((self.seed + self.epoch) % 2**63)
        return iter(torch.randperm(len(self.data_source), generator=order).tolist())


class ResumableLoader(DataLoader):
    """A training DataLoader that can start a pass part-way through an epoch.

    Each pass first asks `batches_done()` how many of the epoch's batches a resumed run
    has already trained on (0 except on the first pass after a mid-epoch checkpoint),
    replays the epoch's order (see EpochShuffleSampler) and skips that many, so the
    resumed run sees exactly the batches the interrupted one had left. It is an
    argument, not a setting, because under DDP Lightning rebuilds the loader from its
    arguments with a DistributedSampler. Its own `generator` keeps `iter()` from drawing
    on the global RNG (the DataLoader draws a worker seed on every pass), which a
    resumed run restores. `state_dict`/`load_state_dict` carry the shuffle seed.
    """

    def __init__(self, *args, batches_done: Callable[[], int] = lambda: 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def __iter__(self):
        batches = super().__iter__()
        for _ in range(self.batches_done()):  # in-memory batches: a skipped one is one gather
            next(batches)
        yield from batches

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        return {"seed": sampler.seed} if isinstance(sampler, EpochShuffleSampler) else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if "seed" in state and isinstance(self.sampler, EpochShuffleSampler):
            self.sampler.seed = state["seed"]


def tensor_loader(
    split: Split,
    batch_size: int,
    train: bool,
    num_workers: int,
    pin_memory: bool,
    batches_done: Callable[[], int] = lambda: 0,
) -> DataLoader:
    """Batches straight from the tensors: training shuffles and drops the ragged last batch.

    The tensors may live on the GPU (then `num_workers` must be 0 and `pin_memory` off).
    Training batches come from a ResumableLoader whose order is seeded by the run's seed
    and which skips `batches_done()` batches at the start of a pass.
    """
    dataset = BatchTensorDataset(*split)
    options = dict(
        batch_size=batch_size,
        collate_fn=whole_batch,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(torch.initial_seed()),
    )
    if not train:
        return DataLoader(dataset, **options)
    sampler = EpochShuffleSampler(dataset, seed=torch.initial_seed())
    return ResumableLoader(
        dataset, sampler=sampler, drop_last=True, batches_done=batches_done, **options
    )
