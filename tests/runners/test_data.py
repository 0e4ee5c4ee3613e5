"""Data order and augmentation seeds: functions of (seed, epoch, position) only."""

from __future__ import annotations

import torch

from runner_helpers import BlobDataset
from usemabench.runners.data import EpochSampler, epoch_order, training_loader


def _batches(loader):
    return [(batch["case_id"], batch["image"]) for batch in loader]


def test_epoch_order_covers_the_data_before_repeating_and_depends_on_seed_and_epoch():
    order = epoch_order(5, 12, seed=0, epoch=0)
    assert sorted(order[:5]) == list(range(5)) and sorted(order[5:10]) == list(range(5))
    assert order == epoch_order(5, 12, seed=0, epoch=0)
    assert order != epoch_order(5, 12, seed=0, epoch=1)
    assert order != epoch_order(5, 12, seed=1, epoch=0)


def test_resumed_epoch_sees_the_same_augmented_batches_whatever_ran_before():
    dataset = BlobDataset(augment=True)
    full = _batches(training_loader(dataset, batch_size=4, batches=5, seed=3, epoch=2))
    torch.rand(100)  # the training RNG stream has moved on: augmentation must not depend on it
    tail = _batches(training_loader(dataset, batch_size=4, batches=5, seed=3, epoch=2, start_batch=2))
    assert len(tail) == 3
    for (ids, images), (expected_ids, expected_images) in zip(tail, full[2:]):
        assert ids == expected_ids and torch.equal(images, expected_images)


def test_ranks_split_each_global_batch_and_see_the_same_samples_as_one_process():
    single = list(EpochSampler(10, batch_size=4, batches=3, seed=0, epoch=0))
    shards = [list(EpochSampler(10, batch_size=4, batches=3, seed=0, epoch=0, rank=rank, world_size=2)) for rank in (0, 1)]
    for batch in range(3):
        merged = shards[0][2 * batch: 2 * batch + 2] + shards[1][2 * batch: 2 * batch + 2]
        assert merged == single[4 * batch: 4 * batch + 4]
