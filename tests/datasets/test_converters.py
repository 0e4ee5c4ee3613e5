"""Importers turn raw layouts into the folder format, handling each layout's quirks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_helpers import disk_pair, save
from usemabench.cli import main
from usemabench.datasets import DatasetError
from usemabench.datasets.converters import run_import
from usemabench.datasets.sources import FolderSource


def jpeg_bytes(array: np.ndarray, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_kvasir_jpeg_masks_are_thresholded(tmp_path: Path):
    src = tmp_path / "Kvasir-SEG"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    image, mask = disk_pair(64, radius=20)
    (src / "images" / "p1.jpg").write_bytes(jpeg_bytes(np.dstack([image] * 3)))
    (src / "masks" / "p1.jpg").write_bytes(jpeg_bytes(np.dstack([mask] * 3)))
    ringing = np.asarray(Image.open(src / "masks" / "p1.jpg"))[..., 0]
    assert len(np.unique(ringing)) > 2, "the JPEG mask must show compression ringing for this test to mean anything"
    assert main(["datasets", "import", "kvasir", str(tmp_path), str(tmp_path / "out")]) == 0
    converted = np.asarray(Image.open(tmp_path / "out" / "masks" / "p1.png"))
    assert set(np.unique(converted)) == {0, 255}
    assert np.array_equal(converted, np.where(ringing > 127, 255, 0))
    assert (tmp_path / "out" / "images" / "p1.jpg").read_bytes() == (src / "images" / "p1.jpg").read_bytes()


def test_dsb2018_instances_are_merged(tmp_path: Path):
    case = tmp_path / "raw" / "abc123"
    save(case / "images" / "abc123.png", np.dstack([disk_pair(32)[0]] * 3 + [np.full((32, 32), 255, np.uint8)]))
    first, second = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    first[2:10, 2:10] = 255
    second[8:14, 8:14] = 255  # overlaps `first` on a 2x2 corner: the later file wins
    save(case / "masks" / "m1.png", first)
    save(case / "masks" / "m2.png", second)
    report = run_import("dsb2018", tmp_path / "raw", tmp_path / "out")
    assert report.cases == 1 and "4 overlapping pixel(s)" in report.notes[0]
    union = np.asarray(Image.open(tmp_path / "out" / "masks" / "abc123.png"))
    labels = np.asarray(Image.open(tmp_path / "out" / "labels" / "abc123.png"))
    assert np.array_equal(union > 0, (first > 0) | (second > 0))
    assert labels[3, 3] == 1 and labels[9, 9] == 2 and labels[12, 12] == 2 and labels.max() == 2
    assert FolderSource(tmp_path / "out").case_ids() == ["abc123"]


def test_dsb2018_instance_size_mismatch_names_the_file(tmp_path: Path):
    case = tmp_path / "raw" / "abc"
    save(case / "images" / "abc.png", np.zeros((32, 32), np.uint8))
    save(case / "masks" / "bad.png", np.zeros((16, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"bad\.png: instance mask is 32x16, its image is 32x32"):
        run_import("dsb2018", tmp_path / "raw", tmp_path / "out")


def test_relabel_changes_the_encoding_and_rejects_unknown_values(folder_dataset: Path, tmp_path: Path):
    assert main(["datasets", "import", "relabel", str(folder_dataset), str(tmp_path / "indices"), "--map", "0:0,255:1"]) == 0
    relabelled = FolderSource(tmp_path / "indices").read_pair("case_0").mask
    assert set(np.unique(relabelled)) == {0, 1}
    with pytest.raises(DatasetError, match=r"case_0\.png: mask value\(s\) 255 are not in the label map"):
        run_import("relabel", folder_dataset, tmp_path / "bad", {0: 0})


def test_destination_must_be_new(folder_dataset: Path, tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="destination exists and is not empty"):
        run_import("relabel", folder_dataset, tmp_path / "taken", {0: 0, 255: 1})
