"""Every dataset in ../shared/data loads through the folder source with its committed split (CI has the data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from usemabench.datasets import SegmentationDataset, get_dataset_spec, training_transform
from usemabench.datasets.sources import FolderSource

pytestmark = pytest.mark.data

# registered dataset -> (split loaded and fully verified here, expected cases, image channels)
REGISTERED = {
    "kvasir_seg": ("test", 100, 3),
    "dsb2018": ("test", 65, 3),  # the stage1_test folder
    "isbi2012_em": ("val", 5, 1),
    "dsb2018_stardist_sample": ("train", 1, 1),
}
SHARED_FOLDERS = ("kvasir_seg", "dsb2018_stage1_train", "dsb2018_stage1_test", "isbi2012_em", "dsb2018_stardist_sample")


@pytest.fixture
def data_root(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("USEMABENCH_DATA", str(shared_data))
    return shared_data


@pytest.mark.parametrize("folder", SHARED_FOLDERS)
def test_every_shared_folder_is_a_folder_source(data_root: Path, folder: str):
    source = FolderSource(data_root / folder)
    assert source.case_ids() and not source.problems()
    pair = source.read_pair(source.case_ids()[0], mask_first_channel=folder == "kvasir_seg")
    assert pair.image.shape[:2] == pair.mask.shape


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_registered_dataset_loads_with_its_committed_split(data_root: Path, name: str):
    split, count, channels = REGISTERED[name]
    spec = get_dataset_spec(name)
    native = SegmentationDataset(spec, split)  # checks the split hash and every pair of the split
    assert len(native) == count
    item = native[0]
    assert item["image"].shape[0] == channels and item["image"].shape[1:] == item["mask"].shape
    assert set(item["mask"].unique().tolist()) <= {0, 1} and torch.isfinite(item["image"]).all()
    train = SegmentationDataset(spec, split, training_transform(spec, 64), verify=False)
    assert train[0]["image"].shape == (channels, 64, 64) and train[0]["mask"].shape == (64, 64)


def test_dsb2018_train_and_val_come_from_stage1_train(data_root: Path):
    spec = get_dataset_spec("dsb2018")
    val = SegmentationDataset(spec, "val", verify=False)
    assert len(val) == 66 and val.source.root == data_root / "dsb2018_stage1_train"


def test_isbi_membranes_are_the_foreground(data_root: Path):
    mask = SegmentationDataset("isbi2012_em", "val", verify=False)[0]["mask"]
    assert 0.1 < mask.float().mean() < 0.35, "membranes (stored as 0) are ~22 % of pixels and map to class 1"
