"""Split generation is seeded and respects native splits; split files are written once and validated."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from usemabench.cli import main
from usemabench.datasets import DatasetError, SegmentationDataset, get_dataset_spec, list_datasets, read_split_file, split_info
from usemabench.datasets.splits import SplitFile, data_hash, make_splits, write_split_file

CASES = [f"c{i}" for i in range(40)]


def test_random_split_is_seeded_disjoint_and_complete():
    first = make_splits(CASES, seed=3, val=0.1, test=8)
    assert make_splits(CASES, seed=3, val=0.1, test=8) == first
    assert make_splits(CASES, seed=4, val=0.1, test=8) != first
    assert [len(first[name]) for name in ("train", "val", "test")] == [28, 4, 8]
    assert sorted(sum(first.values(), [])) == sorted(CASES)


def test_small_fraction_still_gives_one_case():
    splits = make_splits(CASES[:6], val=0.1, test=0.1)
    assert len(splits["val"]) == 1 and len(splits["test"]) == 1


def test_native_splits_are_kept():
    native = {"c0": "test", "c1": "test", "c2": "val"}
    splits = make_splits(CASES, native=native, val=0.5, test=0.5)
    assert splits["test"] == ["c0", "c1"] and splits["val"] == ["c2"]
    assert len(splits["train"]) == 37


def test_contiguous_split_keeps_natural_order():
    slices = [str(i) for i in range(30)]
    splits = make_splits(slices, contiguous=True, val=5, test=5)
    assert splits["train"] == [str(i) for i in range(20)]
    assert splits["val"] == ["20", "21", "22", "23", "24"] and splits["test"] == ["25", "26", "27", "28", "29"]


def test_folds_partition_the_pool():
    splits = make_splits(CASES, folds=4, test=8)
    held_out = [case for fold in range(4) for case in splits[f"fold{fold}_val"]]
    assert sorted(held_out + splits["test"]) == sorted(CASES)
    for fold in range(4):
        assert not set(splits[f"fold{fold}_train"]) & set(splits[f"fold{fold}_val"])
        assert len(splits[f"fold{fold}_train"]) + len(splits[f"fold{fold}_val"]) == 32


def test_split_file_is_never_overwritten_silently(tmp_path):
    path = tmp_path / "split.json"
    split = SplitFile(path, "x", {"train": ["a"], "val": ["b"], "test": ["c"]}, data_hash("abc"))
    write_split_file(path, split)
    with pytest.raises(DatasetError, match="split file exists"):
        write_split_file(path, split)
    assert read_split_file(path).split_hash == split.split_hash


def write_split(path, splits: dict[str, list[str]], method: dict | None = None) -> None:
    """A split file with a consistent data_hash, as a hand-edit that kept the hash valid would leave."""
    cases = {case for names in splits.values() for case in names}
    write_split_file(path, SplitFile(path, "x", splits, data_hash(cases), method or {"kind": "random"}))


def test_split_file_with_cases_shared_across_splits_is_rejected(tmp_path):
    path = tmp_path / "leaky.json"
    write_split(path, {"train": ["a", "b", "c"], "val": ["d"], "test": ["c", "b"]})
    with pytest.raises(DatasetError, match=r"leaky\.json: splits 'test' and 'train' share 2 case\(s\) \(e\.g\. b, c\)"):
        read_split_file(path)
    fold_path = tmp_path / "fold.json"
    write_split(fold_path, {"fold0_train": ["a", "b"], "fold0_val": ["b"], "test": ["c"]})
    with pytest.raises(DatasetError, match="'fold0_train' and 'fold0_val' share 1"):
        read_split_file(fold_path)


def test_folds_and_manual_splits_may_overlap(tmp_path):
    folds = tmp_path / "folds.json"
    write_split(folds, make_splits(CASES, folds=3, test=4))  # every fold's train overlaps the other folds
    assert read_split_file(folds).splits["test"]
    manual = tmp_path / "manual.json"
    write_split(manual, {"train": ["a"], "val": ["a"], "test": ["a"]}, {"kind": "manual"})
    assert read_split_file(manual).splits["test"] == ["a"]


def test_adhoc_split_is_written_once_and_reused(folder_dataset, tmp_path):
    split_path = tmp_path / "adhoc-split.json"
    spec = get_dataset_spec(f"folder:{folder_dataset}", split_file=str(split_path))
    SegmentationDataset(spec, "train")
    written = split_path.read_bytes()
    mtime = split_path.stat().st_mtime_ns
    SegmentationDataset(spec, "val")
    assert split_path.read_bytes() == written and split_path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("name", list_datasets())
def test_committed_split_files_are_valid(name):
    spec = get_dataset_spec(name)
    info = split_info(spec)
    assert info["split_file"] == f"usemabench/datasets/splits/{name}.json"
    assert len(info["split_hash"]) == 12
    assert all(count > 0 for count in info["counts"].values())
    split = read_split_file(spec.split_path)
    if name != "dsb2018_stardist_sample":  # the one-image smoke set lists its image in every split on purpose
        assert not set(split.splits["train"]) & set(split.splits["test"])
        assert not set(split.splits["val"]) & set(split.splits["test"])


def test_split_command_writes_a_new_file(folder_dataset, tmp_path, capsys):
    out = tmp_path / "custom.json"
    assert main(["datasets", "split", f"folder:{folder_dataset}", "--out", str(out), "--val", "1", "--test", "2", "--seed", "7"]) == 0
    split = read_split_file(out)
    assert [len(split.splits[name]) for name in ("train", "val", "test")] == [3, 1, 2]
    assert main(["datasets", "split", f"folder:{folder_dataset}", "--out", str(out)]) == 1
    assert "split file exists" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [("--val", "2.5"), ("--val", "1.0"), ("--test", "-1"), ("--seed", "-1")])
def test_split_command_refuses_a_share_or_seed_it_cannot_mean(option, value, folder_dataset, tmp_path, capsys):
    out = tmp_path / "custom.json"
    with pytest.raises(SystemExit):
        main(["datasets", "split", f"folder:{folder_dataset}", "--out", str(out), option, value])
    error = capsys.readouterr().err
    assert f"argument {option}: " in error and f"'{value}'" in error and not out.exists()


def test_a_split_with_no_training_case_is_refused(folder_dataset, tmp_path, capsys):
    with pytest.raises(DatasetError, match="leave no training case"):
        make_splits([f"c{i}" for i in range(4)], val=3, test=1)
    out = tmp_path / "custom.json"
    assert main(["datasets", "split", f"folder:{folder_dataset}", "--out", str(out), "--val", "0.5", "--test", "3"]) == 1
    assert "val 0.5 and test 3 leave no training case" in capsys.readouterr().err and not out.exists()


def test_a_split_file_written_meanwhile_by_another_process_is_reused(tmp_path, monkeypatch):
    """Two DDP ranks both find no split file, verify, then write: the second reuses the first's identical split."""
    import usemabench.datasets.splits as splits_module

    monkeypatch.setenv("USEMABENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "pairs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(8):
        Image.fromarray(np.full((8, 8), index * 20, np.uint8)).save(root / "images" / f"c{index}.png")
        Image.fromarray((np.arange(64).reshape(8, 8) % 2 * 255).astype(np.uint8)).save(root / "masks" / f"c{index}.png")
    spec = get_dataset_spec(f"folder:{root}")
    first = splits_module.generate_split_file(spec)
    real_generate = splits_module.generate_split_file

    def generate_while_another_rank_writes(spec_):
        generated = real_generate(spec_)
        splits_module.write_split_file(spec_.split_path, first)
        return generated

    monkeypatch.setattr(splits_module, "generate_split_file", generate_while_another_rank_writes)
    assert splits_module.ensure_split_file(spec).splits == first.splits
