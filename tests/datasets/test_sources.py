"""Sources: image/mask folders in every file format, nnU-Net raw 2D and Hugging Face `datasets`, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset_helpers import disk_pair, save
from usemabench.datasets import DatasetError, SegmentationDataset, get_dataset_spec
from usemabench.datasets.sources import FolderSource, SourceURI


def test_folder_pairs_by_stem_across_formats(tmp_path: Path):
    formats = [(".png", ".png"), (".jpg", ".png"), (".tif", ".tiff"), (".bmp", ".gif"), (".jpeg", ".bmp")]
    for index, (image_ext, mask_ext) in enumerate(formats):
        image, mask = disk_pair(seed=index)
        save(tmp_path / "images" / f"case_{index}{image_ext}", image)
        save(tmp_path / "masks" / f"case_{index}{mask_ext}", mask)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    source = FolderSource(tmp_path)
    assert source.case_ids() == [f"case_{i}" for i in range(5)] and not source.problems()
    for index in range(5):
        pair = source.read_pair(f"case_{index}")
        assert pair.image.shape == (32, 32, 1) and set(np.unique(pair.mask)) == {0, 255}


def test_folder_mask_suffix_and_rgba_images(tmp_path: Path):
    image, mask = disk_pair()
    save(tmp_path / "images" / "a.png", np.dstack([image, image, image, np.full_like(image, 255)]))
    save(tmp_path / "masks" / "a_mask.png", mask)
    pair = FolderSource(tmp_path, mask_suffix="_mask").read_pair("a")
    assert pair.image.shape == (32, 32, 3), "alpha is dropped"
    assert SourceURI.parse("folder:/x?mask_suffix=_mask").options == {"mask_suffix": "_mask"}


def test_adhoc_folder_spec_infers_binary_classes(folder_dataset: Path):
    spec = get_dataset_spec(str(folder_dataset))  # a bare folder path works like folder:PATH
    assert spec.task == "binary" and spec.class_names == ("background", "foreground")
    assert dict(spec.label_map) == {0: 0, 255: 1} and spec.in_channels == 1
    item = SegmentationDataset(spec, "train")[0]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].dtype == torch.int64 and set(item["mask"].unique().tolist()) == {0, 1}


def test_adhoc_folder_spec_infers_class_indices_and_options(tmp_path: Path):
    for index in range(4):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[:4], mask[8:12] = 1, 2 + index % 2
        save(tmp_path / "images" / f"c{index}.png", np.zeros((16, 16, 3), dtype=np.uint8))
        save(tmp_path / "masks" / f"c{index}.png", mask)
    spec = get_dataset_spec(f"folder:{tmp_path}")
    assert spec.task == "multiclass" and spec.num_classes == 4 and spec.label_map is None and spec.in_channels == 3
    named = get_dataset_spec(f"folder:{tmp_path}?name=mine&classes=bg,a,b,c&eval_policy=sliding_window")
    assert named.name == "mine" and named.class_names == ("bg", "a", "b", "c") and named.eval_policy == "sliding_window"


@pytest.mark.parametrize(
    ("values", "class_names", "label_map"),
    [
        ((0, 1, 3), ("background", "class_1", "class_3"), {0: 0, 1: 1, 3: 2}),
        ((0, 1, 2, 5), ("background", "class_1", "class_2", "class_5"), {0: 0, 1: 1, 2: 2, 5: 3}),
    ],
)
def test_adhoc_mask_values_with_gaps_are_mapped_not_indices(tmp_path: Path, values, class_names, label_map):
    """A gap in the values must not become a class no mask holds (it would score Dice 1 on every case)."""
    mask = np.zeros((16, 16), dtype=np.uint8)
    for row, value in enumerate(values):
        mask[row * 4 : row * 4 + 4] = value
    save(tmp_path / "images" / "a.png", np.zeros((16, 16), dtype=np.uint8))
    save(tmp_path / "masks" / "a.png", mask)
    spec = get_dataset_spec(f"folder:{tmp_path}")
    assert spec.class_names == class_names and dict(spec.label_map) == label_map


def test_instance_maps_need_the_instances_encoding(tmp_path: Path):
    labels = np.zeros((64, 64), dtype=np.uint16)
    for instance in range(1, 41):
        labels[instance, : instance + 1] = instance * 50
    save(tmp_path / "images" / "a.png", np.zeros((64, 64), dtype=np.uint8))
    save(tmp_path / "masks" / "a.png", labels)
    with pytest.raises(DatasetError, match="41 distinct values .*encoding=instances"):
        get_dataset_spec(f"folder:{tmp_path}")
    spec = get_dataset_spec(f"folder:{tmp_path}?encoding=instances")
    assert spec.task == "binary"


def write_nnunet(root: Path, rgb: bool) -> None:
    channel_names = {"0": "R", "1": "G", "2": "B"} if rgb else {"0": "noNorm", "1": "noNorm"}
    payload = {"channel_names": channel_names, "labels": {"background": 0, "cell": 1, "vessel": 2}, "numTraining": 3, "file_ending": ".png"}
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "dataset.json").write_text(json.dumps(payload))
    for index in range(3):
        image, mask = disk_pair(seed=index)
        if rgb:
            save(root / "imagesTr" / f"case_{index:03d}_0000.png", np.dstack([image] * 3))
        else:
            save(root / "imagesTr" / f"case_{index:03d}_0000.png", image)
            save(root / "imagesTr" / f"case_{index:03d}_0001.png", 255 - image)
        labels = (mask > 0).astype(np.uint8)
        labels[0, :4] = 2
        save(root / "labelsTr" / f"case_{index:03d}.png", labels)


@pytest.mark.parametrize("rgb", [True, False], ids=["rgb-one-file", "two-channel-files"])
def test_nnunet_raw_2d(tmp_path: Path, rgb: bool):
    write_nnunet(tmp_path, rgb)
    spec = get_dataset_spec(f"nnunet:{tmp_path}")
    assert spec.class_names == ("background", "cell", "vessel")
    assert spec.in_channels == (3 if rgb else 2)
    assert spec.normalization == ("zscore" if rgb else "none"), "nnU-Net's channel name picks the normalisation"
    item = SegmentationDataset(spec, "train")[0]
    assert item["image"].shape == ((3 if rgb else 2), 32, 32)
    assert set(item["mask"].unique().tolist()) == {0, 1, 2}


def test_nnunet_missing_label_names_the_case(tmp_path: Path):
    write_nnunet(tmp_path, rgb=True)
    (tmp_path / "labelsTr" / "case_001.png").unlink()
    from usemabench.datasets.sources import NnUNetSource

    with pytest.raises(DatasetError, match=r"case_001_0000\.png: missing label \(no labelsTr/case_001\.png\)"):
        NnUNetSource(tmp_path).read_pair("case_001")


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode for `datasets` even when it was imported before this test (it reads the flags at import)."""
    datasets_config = pytest.importorskip("datasets.config")
    import huggingface_hub.constants

    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "1")
        monkeypatch.setattr(datasets_config, name, True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "hf-home" / "datasets")


def test_huggingface_imagefolder_offline(tmp_path: Path, hf_offline: None):
    rows = ["file_name,mask_file_name,case_id"]
    for split, count in (("train", 4), ("test", 2)):
        for index in range(count):
            image, mask = disk_pair(seed=index + (10 if split == "test" else 0))
            name = f"{split}_{index}"
            save(tmp_path / "repo" / split / f"{name}.png", np.dstack([image] * 3))
            save(tmp_path / "repo" / split / f"{name}_mask.png", (mask > 0).astype(np.uint8))
        lines = [f"{split}_{i}.png,{split}_{i}_mask.png,{split}-{i}" for i in range(count)]
        (tmp_path / "repo" / split / "metadata.csv").write_text("\n".join([rows[0], *lines]) + "\n")
    spec = get_dataset_spec(f"hf:{tmp_path / 'repo'}")
    assert spec.class_names == ("background", "foreground") and spec.in_channels == 3
    train = SegmentationDataset(spec, "train")
    test = SegmentationDataset(spec, "test")
    assert sorted(test.case_ids) == ["test-0", "test-1"], "the dataset's own test split is kept"
    assert len(train) + len(SegmentationDataset(spec, "val")) == 4
    item = test[0]
    assert item["image"].shape == (3, 32, 32) and set(item["mask"].unique().tolist()) == {0, 1}
    one_split = get_dataset_spec(f"hf:{tmp_path / 'repo'}:train?mask=mask")
    assert one_split.source.endswith(":train?mask=mask")


def test_huggingface_missing_repo_is_one_clear_error(hf_offline: None):
    with pytest.raises(DatasetError, match=r"hf:no-such-org/no-such-dataset: cannot load the Hugging Face dataset"):
        get_dataset_spec("hf:no-such-org/no-such-dataset")
