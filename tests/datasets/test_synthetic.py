"""The embedded default: deterministic, generated once into the cache, loadable offline."""

from __future__ import annotations

import json

import numpy as np
import torch

from usemabench.datasets import SegmentationDataset, get_dataset_spec, training_transform
from usemabench.datasets.locations import cache_dir
from usemabench.datasets.synthetic import CLASS_NAMES, NUM_CASES, ensure_synthetic, generate_case


def test_generation_is_deterministic_per_case():
    image, mask = generate_case(5)
    again_image, again_mask = generate_case(5)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    other_image, _ = generate_case(6)
    assert not np.array_equal(image, other_image)
    assert not np.array_equal(image, generate_case(5, seed=1)[0])


def test_every_class_appears_and_images_are_not_trivial():
    counts = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    for index in range(8):
        image, mask = generate_case(index)
        assert image.dtype == np.uint8 and image.shape == mask.shape == (96, 96)
        assert image.std() > 5
        counts += np.bincount(mask.ravel(), minlength=len(CLASS_NAMES))
    assert (counts > 0).all()
    fractions = counts / counts.sum()
    assert fractions[0] > 0.6 and fractions[1] > 0.03 and fractions[2] > 0.02


def test_cached_files_match_the_generator_and_are_written_once():
    root = ensure_synthetic()
    assert root.parent == cache_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["num_cases"] == NUM_CASES and "SYNTHETIC" in (root / "SOURCE.md").read_text()
    mtime = (root / "manifest.json").stat().st_mtime_ns
    assert ensure_synthetic() == root and (root / "manifest.json").stat().st_mtime_ns == mtime
    item = SegmentationDataset("synthetic", "test", verify=False)[0]
    image, mask = generate_case(int(item["case_id"].split("_")[1]))
    assert torch.equal(item["mask"], torch.from_numpy(mask).long())
    expected = (image / 255.0 - (image / 255.0).mean()) / (image / 255.0).std()
    np.testing.assert_allclose(item["image"][0].numpy(), expected, atol=1e-4)


def test_synthetic_loads_through_the_registry():
    spec = get_dataset_spec("synthetic")
    train = SegmentationDataset(spec, "train", training_transform(spec, 64))
    assert [len(SegmentationDataset(spec, split)) for split in ("train", "val", "test")] == [96, 16, 32]
    batch = torch.utils.data.default_collate([train[0], train[1]])
    assert batch["image"].shape == (2, 1, 64, 64) and batch["mask"].shape == (2, 64, 64)
    assert batch["case_id"] == train.case_ids[:2]
