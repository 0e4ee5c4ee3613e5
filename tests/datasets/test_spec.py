"""DatasetSpec validation, the registry, data-root resolution and the `usemabench datasets` listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from usemabench.cli import main
from usemabench.datasets import DatasetError, DatasetSpec, SegmentationDataset, get_dataset_spec, list_datasets, register_dataset
from usemabench.datasets.spec import _REGISTRY

VALID = dict(
    name="toy", modality="test", task="binary", class_names=("background", "thing"), in_channels=1,
    source="folder:/nowhere", split_file="/nowhere/split.json",
)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "binary", "class_names": ("background", "a", "b")}, "a binary task has 2 classes"),
        ({"task": "segmentation"}, "task 'segmentation' is not one of"),
        ({"normalization": "imagenet"}, "normalization 'imagenet' is not one of"),
        ({"normalization": {"mean": [0.5, 0.5], "std": [0.2, 0.2]}}, r"normalization mean/std need one value, or one per channel \(1\)"),
        ({"mask_encoding": "threshold", "task": "multiclass", "class_names": ("a", "b", "c")}, "gives a binary mask"),
        ({"label_map": {0: 0, 255: 2}}, "maps to classes outside 0..1"),
        ({"eval_policy": "tiles"}, "eval_policy 'tiles' is not one of"),
        ({"source": "s3://bucket"}, "does not start with one of"),
    ],
)
def test_invalid_specs_are_refused_with_the_reason(overrides, message):
    with pytest.raises(DatasetError, match=f"dataset spec 'toy': .*{message}"):
        DatasetSpec(**{**VALID, **overrides})


def test_registry_round_trip(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("usemabench.datasets.spec._REGISTRY", dict(_REGISTRY))
    spec = register_dataset(DatasetSpec(**VALID, label_map={0: 0, 255: 1}, normalization={"mean": [0.5], "std": [0.25]}))
    assert get_dataset_spec("toy") is spec and "toy" in list_datasets() and spec.num_classes == 2
    with pytest.raises(DatasetError, match="already registered"):
        register_dataset(spec)


def test_registered_specs_are_complete():
    for name in list_datasets():
        spec = get_dataset_spec(name)
        assert spec.license and spec.citation and spec.modality, name
        assert spec.split_path.is_file(), name


def test_missing_data_folder_names_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("USEMABENCH_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match=rf"dataset folder 'kvasir_seg' not found; looked in: {tmp_path}\. Set USEMABENCH_DATA"):
        SegmentationDataset("kvasir_seg", "test")


@pytest.mark.parametrize("value", ["/nonexistent/path", "./missing", "~/missing"])
def test_a_missing_folder_path_is_not_called_an_unknown_name(value: str, tmp_path: Path, capsys):
    argv = ["run", "--model", "nnunet_small", "--dataset", value, "--runs-dir", str(tmp_path / "runs"),
            "--records-dir", str(tmp_path / "records")]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert f"dataset folder not found: {value}" in error and "unknown dataset" not in error


def test_list_command_shows_every_dataset(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("USEMABENCH_DATA", str(tmp_path))
    assert main(["datasets"]) == 0
    output = capsys.readouterr().out
    for name in list_datasets():
        assert name in output
    assert "not found: set USEMABENCH_DATA to the folder holding kvasir_seg/, or usemabench datasets download kvasir_seg" in output
    assert "not found: set USEMABENCH_DATA to the folder holding isbi2012_em/" in output, "USEMABENCH_DATA first, for every real set"


def test_dataset_pickles_for_spawned_workers():
    """DataLoader workers started with spawn/forkserver receive a pickled copy of the dataset."""
    import pickle

    import torch

    from usemabench.datasets import training_transform

    spec = get_dataset_spec("synthetic")
    dataset = SegmentationDataset(spec, "val", training_transform(spec, 48))
    clone = pickle.loads(pickle.dumps(dataset))
    torch.manual_seed(0)
    expected = dataset[3]
    torch.manual_seed(0)
    actual = clone[3]
    assert torch.equal(actual["image"], expected["image"]) and torch.equal(actual["mask"], expected["mask"])
