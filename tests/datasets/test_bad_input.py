"""Bad input stops with one DatasetError naming the file and the problem, before any training."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dataset_helpers import make_folder_dataset, save
from reliability_cases import DECLARED_LABELS, SPLITS, STRAY_LABELS, params
from usemabench.cli import main
from usemabench.datasets import DatasetError, SegmentationDataset, get_dataset_spec
from usemabench.datasets.spec import DatasetSpec


def binary_spec(root: Path, split_file: Path, **overrides) -> DatasetSpec:
    fields = dict(
        name="disks", modality="test", task="binary", class_names=("background", "disk"), in_channels=1,
        source=f"folder:{root}", split_file=str(split_file), label_map={0: 0, 255: 1},
    )
    return DatasetSpec(**{**fields, **overrides})


@pytest.fixture
def dataset_and_spec(tmp_path: Path) -> tuple[Path, DatasetSpec]:
    root = make_folder_dataset(tmp_path / "disks", cases=6)
    spec = binary_spec(root, tmp_path / "split.json")
    SegmentationDataset(spec, "train")  # writes the seeded split once, while the data is intact
    return root, spec


def load_all_splits(spec: DatasetSpec) -> None:
    for split in ("train", "val", "test"):
        SegmentationDataset(spec, split)


def test_corrupt_image_names_the_file(dataset_and_spec):
    root, spec = dataset_and_spec
    (root / "images" / "case_2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DatasetError, match=r"case_2\.png: unreadable or corrupt image") as error:
        load_all_splits(spec)
    assert "Traceback" not in str(error.value)
    assert error.value.__cause__ is None and (error.value.__context__ is None or error.value.__suppress_context__)


def test_truncated_image_names_the_file(dataset_and_spec):
    root, spec = dataset_and_spec
    path = root / "images" / "case_3.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"case_3\.png: unreadable or corrupt image"):
        load_all_splits(spec)


def test_missing_mask_names_the_image(dataset_and_spec):
    root, spec = dataset_and_spec
    (root / "masks" / "case_1.png").unlink()
    with pytest.raises(DatasetError, match=r"case_1\.png: missing mask"):
        load_all_splits(spec)


def test_size_mismatch_names_both_files(dataset_and_spec):
    root, spec = dataset_and_spec
    save(root / "masks" / "case_4.png", np.zeros((32, 30), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"case_4\.png: mask is 30x32 \(WxH\) but its image .*case_4\.png is 32x32"):
        load_all_splits(spec)


def test_label_value_not_in_spec(dataset_and_spec):
    root, spec = dataset_and_spec
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:4, :4] = 7
    save(root / "masks" / "case_5.png", mask)
    with pytest.raises(DatasetError, match=r"case_5\.png: label value\(s\) 7 not allowed"):
        load_all_splits(spec)


def test_index_encoding_rejects_values_above_the_classes(tmp_path: Path):
    root = tmp_path / "index"
    for index in range(3):
        save(root / "images" / f"c{index}.png", np.zeros((8, 8), dtype=np.uint8))
        save(root / "masks" / f"c{index}.png", np.full((8, 8), index, dtype=np.uint8))
    spec = binary_spec(root, tmp_path / "split.json", label_map=None)
    with pytest.raises(DatasetError, match=r"c2\.png: label value\(s\) 2 not allowed; this dataset has 2 classes"):
        load_all_splits(spec)


def test_wrong_channel_count(dataset_and_spec):
    root, spec = dataset_and_spec
    save(root / "images" / "case_0.png", np.zeros((32, 32, 3), dtype=np.uint8) + np.arange(3, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"case_0\.png: image has 3 channels, the dataset expects 1"):
        load_all_splits(spec)


def test_empty_split(tmp_path: Path):
    root = make_folder_dataset(tmp_path / "disks", cases=2)
    split_file = tmp_path / "split.json"
    spec = binary_spec(root, split_file)
    from usemabench.datasets.splits import SplitFile, data_hash, write_split_file

    write_split_file(split_file, SplitFile(split_file, "disks", {"train": ["case_0", "case_1"], "val": [], "test": []}, data_hash(["case_0", "case_1"])))
    assert len(SegmentationDataset(spec, "train")) == 2
    with pytest.raises(DatasetError, match=r"split\.json: split 'val' is empty"):
        SegmentationDataset(spec, "val")


def test_unknown_split_lists_the_splits(dataset_and_spec):
    _, spec = dataset_and_spec
    with pytest.raises(DatasetError, match=r"no split 'training'; splits are"):
        SegmentationDataset(spec, "training")


def test_stale_split_when_a_case_is_added(dataset_and_spec):
    root, spec = dataset_and_spec
    make_folder_dataset(root / "extra", cases=1)
    (root / "extra" / "images" / "case_0.png").rename(root / "images" / "new_case.png")
    (root / "extra" / "masks" / "case_0.png").rename(root / "masks" / "new_case.png")
    with pytest.raises(DatasetError, match=r"stale split.*1 case\(s\) in the data are not in the split file \(e\.g\. new_case\)"):
        SegmentationDataset(spec, "train")


def test_stale_split_when_a_case_is_removed(dataset_and_spec):
    root, spec = dataset_and_spec
    (root / "images" / "case_0.png").unlink()
    (root / "masks" / "case_0.png").unlink()
    with pytest.raises(DatasetError, match=r"stale split.*1 case\(s\) of the split file are not in the data \(e\.g\. case_0\)"):
        SegmentationDataset(spec, "test")


def test_hand_edited_split_file_is_refused(dataset_and_spec):
    _, spec = dataset_and_spec
    payload = json.loads(spec.split_path.read_text())
    payload["splits"]["train"].append("case_from_elsewhere")
    spec.split_path.write_text(json.dumps(payload))
    with pytest.raises(DatasetError, match=r"no longer match the file's data_hash"):
        SegmentationDataset(spec, "train")


def test_two_files_for_one_case(dataset_and_spec):
    root, spec = dataset_and_spec
    save(root / "images" / "case_0.jpg", np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"case_0\.jpg and case_0\.png: two files for case 'case_0'"):
        load_all_splits(spec)


def test_verify_command_lists_every_problem(dataset_and_spec, capsys):
    root, _ = dataset_and_spec
    (root / "masks" / "case_1.png").unlink()
    (root / "images" / "case_2.png").write_bytes(b"garbage")
    assert main(["datasets", "verify", f"folder:{root}"]) == 1
    output = capsys.readouterr().out
    assert "case_1.png: missing mask" in output and "case_2.png: unreadable or corrupt image" in output
    assert "FAILED: 2 problem(s)" in output


def test_unknown_dataset_suggests_names():
    with pytest.raises(DatasetError, match=r"unknown dataset 'kvasir'; did you mean kvasir_seg\?"):
        get_dataset_spec("kvasir")


@pytest.mark.parametrize("case", params(SPLITS))
def test_the_split_file_is_written_only_once_the_data_passes(tmp_path: Path, case):
    root = make_folder_dataset(tmp_path / "disks", cases=6)
    (root / "images" / case.data["image"]).write_bytes(b"not an image")
    spec = binary_spec(root, tmp_path / "split.json")
    with pytest.raises(DatasetError, match=case.message):
        SegmentationDataset(spec, "train")
    assert not spec.split_path.exists()
    (root / "images" / case.data["image"]).unlink()  # the user removes the bad pair and runs again
    (root / "masks" / case.data["image"]).unlink()
    assert len(SegmentationDataset(spec, "train")) + len(SegmentationDataset(spec, "test")) >= 4
    assert spec.split_path.is_file()


def stray_dataset(root: Path, case) -> str:
    """Six pairs whose masks hold `values` in solid blocks; mask c3 also holds the stray value in one corner."""
    for index in range(6):
        mask = np.zeros((32, 32), dtype=case.data["dtype"])
        for number, value in enumerate(case.data["values"][1:]):
            mask[4 + 12 * number : 14 + 12 * number, 8:24] = value
        if index == 3:
            mask[:3, :3] = case.data["stray"]
        save(root / "masks" / f"c{index}.png", mask)
        save(root / "images" / f"c{index}.png", np.full((32, 32), 40 + index, dtype=np.uint8))
    return f"folder:{root}" + (f"?classes={case.data['classes']}" if "classes" in case.data else "")


@pytest.mark.parametrize("case", params(STRAY_LABELS))
def test_a_stray_label_value_is_refused_naming_the_file_and_value(tmp_path: Path, case, capsys):
    uri = stray_dataset(tmp_path / "data", case)
    spec = get_dataset_spec(uri)
    assert case.data["stray"] not in (spec.label_map or {}) and spec.num_classes == len(case.data["values"])
    with pytest.raises(DatasetError, match=case.message):
        SegmentationDataset(spec, "train")
    assert main(["datasets", "verify", uri]) == 1  # verify names it too, as one of its problems
    assert re.search(case.message, capsys.readouterr().out)


@pytest.mark.parametrize("case", params(DECLARED_LABELS))
def test_declared_classes_take_every_value(tmp_path: Path, case, caplog):
    spec = get_dataset_spec(stray_dataset(tmp_path / "data", case))
    assert dict(spec.label_map) == {0: 0, 7: 1, 255: 2} and spec.class_names == ("background", "a", "b")
    assert re.search(case.message, spec.description)
    split = next(name for name in ("train", "val", "test") if "c3" in SegmentationDataset(spec, name).case_ids)
    dataset = SegmentationDataset(spec, split)
    mask = dataset[dataset.case_ids.index("c3")]["mask"]
    assert (mask[:3, :3] == 1).all() and (mask[4:14, 8:24] == 2).all()  # 7 is class 1, 255 class 2
