"""Training data order: a sampler whose epoch order depends only on (seed, epoch), sharded like DDP's.

Each epoch draws `batch_size x iterations_per_epoch` samples (nnU-Net style: epochs are a fixed number of
iterations, not passes over the data) from back-to-back permutations of the dataset. Each sample carries
its own augmentation seed, derived from (seed, epoch, global position), so the batches of a run are the
same whether it uses 0 or 8 workers, 1 or 4 GPUs, or was resumed in the middle of an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from usemabench.runners.seeding import derive_seed, isolated_rng, worker_init_fn


def epoch_order(dataset_size: int, num_samples: int, seed: int, epoch: int) -> list[int]:
    """Dataset indices for one epoch: consecutive seeded permutations, cut to `num_samples`."""
    if dataset_size < 1:
        raise ValueError("the training split is empty")
    order: list[int] = []
    permutation = 0
    while len(order) < num_samples:
        generator = torch.Generator().manual_seed(derive_seed(seed, epoch, "order", permutation))
        order.extend(torch.randperm(dataset_size, generator=generator).tolist())
        permutation += 1
    return order[:num_samples]


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (dataset index, augmentation seed) for this rank's share of one epoch.

    The global batch of `batch_size` samples is split into `world_size` contiguous chunks, one per rank
    (the role DistributedSampler plays for DDP). `start_batch` skips batches already trained on (resume).
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        batches: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} processes")
        self.order = epoch_order(dataset_size, batch_size * batches, seed, epoch)
        self.batch_size, self.batches, self.seed, self.epoch = batch_size, batches, seed, epoch
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for batch in range(self.start_batch, self.batches):
            first = batch * self.batch_size + self.rank * self.local_batch_size
            for position in range(first, first + self.local_batch_size):
                yield self.order[position], derive_seed(self.seed, self.epoch, "augment", position)

    def __len__(self) -> int:
        return (self.batches - self.start_batch) * self.local_batch_size


class SeededSamples(Dataset):
    """Wraps a dataset so that item `(index, seed)` is loaded and augmented under its own RNG seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        with isolated_rng(seed):
            return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


def training_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    batches: int,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """The DataLoader of one epoch (rebuilt every epoch, so its order is set by the sampler alone)."""
    sampler = EpochSampler(len(dataset), batch_size, batches, seed, epoch, rank, world_size, start_batch)  # type: ignore[arg-type]
    return DataLoader(
        SeededSamples(dataset),
        batch_size=sampler.local_batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(derive_seed(seed, epoch, "workers")),
        pin_memory=pin_memory,
        drop_last=False,
    )
