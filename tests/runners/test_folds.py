"""Folds: a split shipped in the data folder is used, and `--fold K` trains on one fold of a split with folds."""

from __future__ import annotations

import pytest

from usemabench.cli import main
from usemabench.core.records import read_records
from usemabench.leaderboard.aggregate import aggregate
from usemabench.leaderboard.store import load_records

MODEL = "nnunet_small"


def run_cli(dataset, protocol, tmp_path, *extra):
    return main([
        "run", "--model", MODEL, "--dataset", dataset, "--protocol", str(protocol), *extra,
        "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu", "--no-progress",
    ])


@pytest.fixture
def fold_folder(blob_folder):
    """The blob folder with a `split.csv` of 3 folds (case_id,fold), as cross-validation data often comes."""
    rows = [f"case{index:02d}.png,{index % 3}" for index in range(12)]
    (blob_folder / "split.csv").write_text("case_id,fold\n" + "\n".join(rows) + "\n")
    return blob_folder


def test_a_split_file_in_the_data_folder_is_used_and_said_so(blob_folder, capsys):
    (blob_folder / "split.csv").write_text(
        "case_id,split\n" + "".join(f"case{i:02d},{'test' if i < 3 else 'train'}\n" for i in range(12))
    )
    assert main(["datasets", "verify", str(blob_folder)]) == 0
    assert f"imported from {blob_folder / 'split.csv'}" in capsys.readouterr().out
    assert main(["datasets", "split", str(blob_folder)]) == 0
    assert main(["datasets", "verify", str(blob_folder)]) == 0
    out = capsys.readouterr().out
    assert "imported from split.csv" in out and "test 3" in out


def test_two_split_files_in_the_data_folder_are_refused_naming_both(blob_folder, capsys):
    (blob_folder / "split.csv").write_text("case_id,split\ncase00,train\n")
    (blob_folder / "splits_final.json").write_text('[{"train": ["case00"], "val": ["case01"]}]')
    assert main(["datasets", "verify", str(blob_folder)]) != 0
    err = capsys.readouterr().err
    assert "split.csv and splits_final.json are both split files" in err and "?split_file=" in err


def test_a_split_of_folds_only_needs_fold_and_says_which(fold_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli(f"folder:{fold_folder}", tiny_protocol_file, tmp_path) != 0
    assert "holds folds (0, 1, 2) and no train part: pass --fold K" in capsys.readouterr().err
    assert run_cli(f"folder:{fold_folder}", tiny_protocol_file, tmp_path, "--fold", "3") != 0
    assert "no fold 3; its folds are 0, 1, 2" in capsys.readouterr().err
    assert not (tmp_path / "records").exists() or not list((tmp_path / "records").glob("*.json"))


def test_fold_runs_train_on_their_fold_test_on_its_val_and_stay_apart(fold_folder, tiny_protocol_file, tmp_path, capsys):
    for fold in ("0", "1"):
        assert run_cli(f"folder:{fold_folder}", tiny_protocol_file, tmp_path, "--fold", fold) == 0
    assert "fold1_val dice" in capsys.readouterr().out
    assert sorted(path.name for path in (tmp_path / "runs" / MODEL / "blobs" / "tiny").iterdir()) == ["seed0-fold0", "seed0-fold1"]
    evals, _ = read_records(tmp_path / "records", kind="eval")
    trains, _ = read_records(tmp_path / "records", kind="train")
    assert sorted((r["dataset"]["fold"], r["dataset"]["split"], r["metrics"]["num_cases"]) for r in evals) == [
        (0, "fold0_val", 4), (1, "fold1_val", 4)
    ]
    assert sorted((r["dataset"]["fold"], r["dataset"]["split"]) for r in trains) == [(0, "fold0_train"), (1, "fold1_train")]
    assert all("_fold" in r["_path"] for r in evals + trains)
    leaderboard = aggregate(load_records(tmp_path / "records"), reference=MODEL)
    assert sorted(board.dataset for board in leaderboard.groups) == ["blobs-fold0", "blobs-fold1"]


def test_a_fold_run_is_tested_on_the_test_part_when_the_split_has_one(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert main(["datasets", "split", f"folder:{blob_folder}", "--folds", "2", "--test", "4"]) == 0
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path, "--fold", "1") == 0
    (evaluation,), _ = read_records(tmp_path / "records", kind="eval")
    assert (evaluation["dataset"]["split"], evaluation["dataset"]["fold"], evaluation["metrics"]["num_cases"]) == ("test", 1, 4)
    assert "test dice" in capsys.readouterr().out


def test_the_main_job_refuses_a_fold(capsys):
    assert main(["run", "--fold", "0"]) != 0
    assert "--fold need --model" in capsys.readouterr().err


def test_a_fold_run_without_a_test_part_is_scored_with_last_not_the_checkpoint_its_val_part_chose(fold_folder, tiny_protocol_file, tmp_path):
    assert run_cli(f"folder:{fold_folder}", tiny_protocol_file, tmp_path, "--fold", "2") == 0
    (evaluation,), _ = read_records(tmp_path / "records", kind="eval")
    assert evaluation["metrics"]["settings"]["checkpoint"]["which"] == "last"


def test_drawing_another_split_of_a_folder_that_ships_one_is_refused(fold_folder, capsys):
    assert main(["datasets", "split", str(fold_folder), "--folds", "4", "--seed", "3"]) != 0
    err = capsys.readouterr().err
    assert "split.csv ships with the data" in err and "--folds, --seed would be ignored" in err
    assert main(["datasets", "split", str(fold_folder)]) == 0  # importing it as given is what plain `split` does


def test_a_sweep_does_not_take_a_fold_run_for_the_plain_run(fold_folder, tiny_protocol_file, tmp_path):
    from usemabench.runners.sweep import completed

    assert run_cli(f"folder:{fold_folder}", tiny_protocol_file, tmp_path, "--fold", "0") == 0
    assert completed(tmp_path / "records", read_records(tmp_path / "records", kind="eval")[0][0]["protocol"]["hash"]) == set()
