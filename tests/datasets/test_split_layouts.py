"""Splits researchers use: official train/test folders, a given CSV/JSON split, and grouped splits that keep
every group (video sequence, patient) in one part."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dataset_helpers import disk_pair, save
from usemabench.cli import main
from usemabench.datasets import DatasetError, SegmentationDataset, get_dataset_spec, read_split_file
from usemabench.datasets.sources import FolderSource, SourceURI
from usemabench.datasets.splits import ensure_split_file, make_splits


def pair(root: Path, image_folder: str, mask_folder: str | None, case: str, seed: int = 0) -> None:
    image, mask = disk_pair(16, radius=4, seed=seed)
    save(root / image_folder / f"{case}.png", image)
    if mask_folder:
        save(root / mask_folder / f"{case}.png", mask)


def split_of(uri: str) -> dict[str, list[str]]:
    return ensure_split_file(get_dataset_spec(uri)).splits


@pytest.mark.parametrize("inside", [True, False], ids=["images/train", "train/images"])
def test_official_train_test_folders_are_kept(tmp_path: Path, inside: bool):
    for part, count in (("train", 10), ("test", 4)):
        for index in range(count):
            folders = (f"images/{part}", f"masks/{part}") if inside else (f"{part}/images", f"{part}/masks")
            pair(tmp_path, *folders, f"{part}{index:02d}", seed=index)
    source = FolderSource(tmp_path)
    assert len(source.case_ids()) == 14 and not source.problems()
    splits = split_of(f"folder:{tmp_path}")
    assert splits["test"] == [f"test{i:02d}" for i in range(4)], "the official test folder is the test split"
    assert len(splits["val"]) == 1 and all(case.startswith("train") for case in splits["train"] + splits["val"])
    assert len(SegmentationDataset(f"folder:{tmp_path}", "test")) == 4


def test_unlabelled_part_is_left_out_and_said(tmp_path: Path, caplog):
    for index in range(4):
        pair(tmp_path, "training/images", "training/masks", f"a{index}", seed=index)
        pair(tmp_path, "testing/images", None, f"b{index}", seed=index)
    with caplog.at_level(logging.WARNING):
        source = FolderSource(tmp_path)
    assert source.case_ids() == ["a0", "a1", "a2", "a3"] and "unlabelled part is left out" in caplog.text


def test_same_stem_in_two_parts_is_a_problem(tmp_path: Path):
    pair(tmp_path, "train/images", "train/masks", "001")
    pair(tmp_path, "test/images", "test/masks", "001")
    assert any("two files for case '001'" in problem for problem in FolderSource(tmp_path).problems())


def write_cases(root: Path, names: list[str]) -> Path:
    for index, name in enumerate(names):
        pair(root, "images", "masks", name, seed=index)
    return root


def test_given_csv_split_through_the_uri_option(tmp_path: Path, caplog):
    root = write_cases(tmp_path / "data", [f"img{i}" for i in range(10)])
    given = tmp_path / "official.csv"
    rows = ["image,set"] + [f"img{i}.png,training" for i in range(6)] + ["img6.png,validation", "img7,test", "img8,test"]
    given.write_text("\n".join(rows) + "\n")
    uri = f"folder:{root}?split_file={given}"
    with caplog.at_level(logging.WARNING):
        split = ensure_split_file(get_dataset_spec(uri))
    assert split.splits == {"train": [f"img{i}" for i in range(6)], "val": ["img6"], "test": ["img7", "img8"]}
    assert split.excluded == ("img9",) and "img9" in caplog.text, "an unlisted case is excluded and said, never placed"
    assert split.method["kind"] == "given" and split.method["from"] == "official.csv"
    assert len(SegmentationDataset(uri, "test")) == 2
    given.write_text("\n".join(rows[:-1] + ["img8,training"]) + "\n")
    assert get_dataset_spec(uri).split_path != split.path, "an edited given split is a new split file, never the stale one"


def test_given_split_errors_name_the_file(tmp_path: Path):
    root = write_cases(tmp_path / "data", ["a", "b", "c"])
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"train": ["a", "b"], "test": ["zz"]}))
    with pytest.raises(DatasetError, match=r"unknown\.json: 1 listed case\(s\) are not in the data \(e\.g\. zz\)"):
        split_of(f"folder:{root}?split_file={unknown}")
    with pytest.raises(DatasetError, match=r"missing\.csv: split file not found"):
        get_dataset_spec(f"folder:{root}?split_file={tmp_path / 'missing.csv'}")
    assert not (tmp_path / "missing.csv").exists(), "a mistyped given split is never written over"
    no_column = tmp_path / "bad.csv"
    no_column.write_text("case_id,comment\na,x\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: no split column"):
        split_of(f"folder:{root}?split_file={no_column}")
    in_two_parts = tmp_path / "twice.csv"
    in_two_parts.write_text("case_id,split\na,test\nb,train\na,train\n")
    with pytest.raises(DatasetError, match=r"twice\.csv: case 'a' is listed in both 'test' and 'train'"):
        split_of(f"folder:{root}?split_file={in_two_parts}")


def test_split_command_imports_json_and_nnunet_folds(tmp_path: Path, capsys):
    root = write_cases(tmp_path / "data", [f"c{i}" for i in range(8)])
    given = tmp_path / "parts.json"
    given.write_text(json.dumps({"train": [f"c{i}" for i in range(6)], "test": ["c6", "c7"]}))
    out = tmp_path / "split.json"
    assert main(["datasets", "split", f"folder:{root}", "--from", str(given), "--val", "1", "--out", str(out)]) == 0
    split = read_split_file(out)
    assert split.splits["test"] == ["c6", "c7"] and len(split.splits["val"]) == 1 and len(split.splits["train"]) == 5
    folds = tmp_path / "splits_final.json"
    folds.write_text(json.dumps([{"train": ["c0", "c1", "c2", "c3"], "val": ["c4", "c5", "c6", "c7"]},
                                 {"train": ["c4", "c5", "c6", "c7"], "val": ["c0", "c1", "c2", "c3"]}]))  # fmt: skip
    out_folds = tmp_path / "folds.json"
    assert main(["datasets", "split", f"folder:{root}", "--from", str(folds), "--out", str(out_folds)]) == 0
    assert sorted(read_split_file(out_folds).splits) == ["fold0_train", "fold0_val", "fold1_train", "fold1_val"]


FRAMES = [f"seq{sequence}_frame{frame:03d}" for sequence in range(6) for frame in range(5)]


def test_grouped_split_never_straddles(tmp_path: Path):
    groups = {case: case.split("_")[0] for case in FRAMES}
    for seed in range(5):
        splits = make_splits(FRAMES, seed=seed, val=0.2, test=0.2, groups=groups)
        parts = {name: {groups[case] for case in cases} for name, cases in splits.items()}
        assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
        assert sorted(sum(splits.values(), [])) == sorted(FRAMES)
    assert make_splits(FRAMES[:10], seed=1, val=1, test=1) == make_splits(FRAMES[:10], seed=1, val=1, test=1, groups=None)


def test_group_by_option_keeps_sequences_whole_and_plus_survives_the_uri(tmp_path: Path):
    root = write_cases(tmp_path / "endo", FRAMES)
    uri = f"folder:{root}?group_by=^(seq\\d+)_frame\\d+$"
    assert SourceURI.parse(uri).options["group_by"] == "^(seq\\d+)_frame\\d+$", "'+' is kept, not read as a space"
    split = ensure_split_file(get_dataset_spec(uri))
    sequences = {name: {case.split("_")[0] for case in cases} for name, cases in split.splits.items()}
    assert not sequences["test"] & (sequences["train"] | sequences["val"]) and not sequences["train"] & sequences["val"]
    assert split.method["group_by"] == "^(seq\\d+)_frame\\d+$"


def test_groups_csv_is_used_and_a_given_split_that_cuts_a_group_is_refused(tmp_path: Path):
    names = [f"p{patient}_s{slice_}" for patient in range(4) for slice_ in range(3)]
    root = write_cases(tmp_path / "mri", names)
    (root / "groups.csv").write_text("case_id,patient\n" + "".join(f"{name},{name.split('_')[0]}\n" for name in names))
    split = ensure_split_file(get_dataset_spec(f"folder:{root}?name=mri"))
    assert split.method["groups_file"] == "groups.csv"
    patients = {name: {case.split("_")[0] for case in cases} for name, cases in split.splits.items()}
    assert not patients["test"] & patients["train"]
    cutting = tmp_path / "cut.csv"
    cutting.write_text("case_id,split\n" + "".join(f"{n},{'test' if n == 'p0_s0' else 'train'}\n" for n in names))
    with pytest.raises(DatasetError, match=r"group\(s\) p0 are in both 'train' and 'test'"):
        split_of(f"folder:{root}?split_file={cutting}")


def test_verify_warns_on_grouped_names_and_the_hinted_option_works(tmp_path: Path, capsys):
    root = write_cases(tmp_path / "video", FRAMES)
    assert main(["datasets", "verify", f"folder:{root}"]) == 0
    output = capsys.readouterr().out
    assert "warning: case ids look grouped: 6 groups" in output
    hint = output.split("?group_by=", 1)[1].split(" ", 1)[0]
    split = ensure_split_file(get_dataset_spec(f"folder:{root}?group_by={hint}"))
    assert split.method["group_by"] == hint
    sequences = {name: {case.split("_")[0] for case in cases} for name, cases in split.splits.items()}
    assert not sequences["test"] & sequences["train"] and not sequences["val"] & sequences["train"]
    assert main(["datasets", "verify", f"folder:{root}?group_by={hint}"]) == 0
    assert "groups: 6 by" in capsys.readouterr().out
    command_hint = output.split("--group-by '", 1)[1].split("'", 1)[0]
    out = tmp_path / "grouped.json"
    assert main(["datasets", "split", f"folder:{root}", "--group-by", command_hint, "--out", str(out)]) == 0
    cli_sequences = {name: {case.split("_")[0] for case in cases} for name, cases in read_split_file(out).splits.items()}
    assert not cli_sequences["test"] & cli_sequences["train"] and not cli_sequences["val"] & cli_sequences["train"]


def test_verify_reports_an_existing_split_that_cuts_a_group(tmp_path: Path, capsys):
    root = write_cases(tmp_path / "video", FRAMES)
    out = tmp_path / "split.json"
    assert main(["datasets", "split", f"folder:{root}", "--out", str(out), "--val", "0.2", "--test", "0.2"]) == 0
    (root / "groups.csv").write_text("case_id,sequence\n" + "".join(f"{c},{c.split('_')[0]}\n" for c in FRAMES))
    assert main(["datasets", "verify", f"folder:{root}?split_file={out}"]) == 1
    assert "are in both" in capsys.readouterr().out
