"""Field-of-view and ignore masks: the loader marks left-out pixels with IGNORE_INDEX, transforms move them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from dataset_helpers import make_folder_dataset, save
from usemabench.datasets.cases import load_case
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.loader import SegmentationDataset
from usemabench.datasets.regions import IGNORE_INDEX, apply_region
from usemabench.datasets.sources import open_source
from usemabench.datasets.spec import get_dataset_spec
from usemabench.datasets.transforms import training_transform
from usemabench.datasets.verify import verify_cases


def _with_region(root, kind: str, columns: slice) -> None:
    """A region mask per case: nonzero in `columns`, zero elsewhere."""
    for image in sorted((root / "images").iterdir()):
        region = np.zeros((32, 32), np.uint8)
        region[:, columns] = 255
        save(root / kind / f"{image.stem}.png", region)


def _loaded(root, split="train"):
    spec = get_dataset_spec(f"folder:{root}")
    return SegmentationDataset(spec, split)


def test_pixels_outside_the_fov_are_ignored_and_the_rest_keep_their_labels(tmp_path):
    root = make_folder_dataset(tmp_path / "fov_set")
    _with_region(root, "fov", slice(0, 20))
    dataset = _loaded(root)
    item = dataset[0]
    assert (item["mask"][:, 20:] == IGNORE_INDEX).all()
    assert item["mask"][:, :20].min() >= 0 and item["mask"][:, :20].max() == 1
    assert dataset.ignored_pixels == "pixels outside the fov/ mask"


def test_pixels_inside_an_ignore_mask_are_ignored(tmp_path):
    root = make_folder_dataset(tmp_path / "ignore_set")
    _with_region(root, "ignore", slice(0, 4))
    dataset = _loaded(root)
    mask = dataset[0]["mask"]
    assert (mask[:, :4] == IGNORE_INDEX).all() and (mask[:, 4:] >= 0).all()
    assert dataset.ignored_pixels == "pixels inside the ignore/ mask"


def test_without_a_region_folder_nothing_is_ignored(folder_dataset):
    dataset = _loaded(folder_dataset)
    assert dataset.ignored_pixels == "none"
    assert all((dataset[index]["mask"] >= 0).all() for index in range(len(dataset)))


def test_a_case_without_its_fov_file_is_named(tmp_path):
    root = make_folder_dataset(tmp_path / "partial")
    _with_region(root, "fov", slice(0, 20))
    (root / "fov" / "case_0.png").unlink()
    spec = get_dataset_spec(f"folder:{root}")
    with pytest.raises(DatasetError, match=r"fov: no fov mask for case 'case_0'"):
        load_case(spec, open_source(spec.source), "case_0")
    load_case(spec, open_source(spec.source), "case_1")


def test_both_region_folders_are_refused(tmp_path):
    root = make_folder_dataset(tmp_path / "both")
    _with_region(root, "fov", slice(0, 20))
    _with_region(root, "ignore", slice(0, 4))
    with pytest.raises(DatasetError, match="both fov/ and ignore/"):
        _loaded(root)[0]


def test_a_region_of_another_size_is_named():
    with pytest.raises(DatasetError, match=r"fov\.png: fov mask is 8x4 \(WxH\) but the label mask is 6x6"):
        apply_region(np.zeros((6, 6), np.int64), np.ones((4, 8), np.uint8), "fov", "fov.png")


def test_training_transforms_move_ignored_pixels_with_the_mask(tmp_path):
    root = make_folder_dataset(tmp_path / "moved")
    _with_region(root, "fov", slice(0, 16))
    spec = get_dataset_spec(f"folder:{root}")
    image = torch.zeros(1, 32, 32)
    image[:, :, 16:] = 5.0  # the ignored half is bright: after any transform, bright pixels are ignored ones
    mask = torch.zeros(32, 32, dtype=torch.int64)
    mask[:, 16:] = IGNORE_INDEX
    torch.manual_seed(0)
    for _ in range(5):
        moved_image, moved_mask = training_transform(spec, 24, {"preset": "none", "hflip": 0.5, "rotate_degrees": 20.0})(
            tv_tensors.Image(image), tv_tensors.Mask(mask)
        )
        assert moved_mask.dtype == torch.int64
        assert set(moved_mask.unique().tolist()) <= {IGNORE_INDEX, 0}
        assert (moved_mask[moved_image[0] > 4.5] == IGNORE_INDEX).all()


def test_verify_counts_ignored_pixels_apart_from_the_classes(tmp_path):
    root = make_folder_dataset(tmp_path / "counted", cases=3)
    _with_region(root, "ignore", slice(0, 8))  # a quarter of every 32x32 mask
    spec = get_dataset_spec(f"folder:{root}")
    source = open_source(spec.source)
    report = verify_cases(spec, source, source.case_ids())
    assert not report.problems and report.ignored_pixels == 3 * 32 * 8
    assert int(report.class_pixels.sum()) == 3 * 32 * 24
    assert "ignored pixels (left out of loss and metrics): 25.0%" in report.summary_lines(spec)


def _with_band(root, value: int) -> None:
    """Every mask gets a 2-px band of raw value `value` along its left edge."""
    for mask_file in sorted((root / "masks").iterdir()):
        mask = np.asarray(Image.open(mask_file)).copy()
        mask[:, :2] = value
        save(mask_file, mask)


def test_an_ignore_value_is_left_out_and_names_no_class(tmp_path):
    root = make_folder_dataset(tmp_path / "banded")
    _with_band(root, 128)
    spec = get_dataset_spec(f"folder:{root}?ignore_index=128")
    assert spec.class_names == ("background", "foreground") and spec.ignore_index == 128
    dataset = SegmentationDataset(spec, "train")
    mask = dataset[0]["mask"]
    assert (mask[:, :2] == IGNORE_INDEX).all() and set(mask[:, 2:].unique().tolist()) <= {0, 1}
    assert dataset.ignored_pixels == "pixels of raw mask value 128"


def test_an_ignore_value_above_the_threshold_never_becomes_foreground(tmp_path):
    root = make_folder_dataset(tmp_path / "thresholded")
    _with_band(root, 200)
    spec = get_dataset_spec(f"folder:{root}?encoding=threshold&ignore_index=200")
    source = open_source(spec.source)
    _, mask = load_case(spec, source, source.case_ids()[0])
    assert (mask[:, :2] == IGNORE_INDEX).all() and set(np.unique(mask[:, 2:])) <= {0, 1}


def test_a_negative_ignore_value_is_refused():
    with pytest.raises(DatasetError, match="ignore_index must be a raw mask value >= 0"):
        replace(get_dataset_spec("synthetic"), ignore_index=-3)


def test_the_region_file_is_one_of_the_files_a_case_is_made_of(tmp_path):
    root = make_folder_dataset(tmp_path / "hashed", cases=2)
    _with_region(root, "fov", slice(0, 20))
    assert open_source(f"folder:{root}").case_files("case_1") == {
        "image": root / "images" / "case_1.png", "mask": root / "masks" / "case_1.png", "fov": root / "fov" / "case_1.png",
    }
