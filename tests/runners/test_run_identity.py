"""Run identity from content: a run folder is resumed only for the same data, and names stay inside --runs-dir."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from usemabench.cli import main
from usemabench.core.records import read_records

MODEL = "nnunet_small"


def run_cli(dataset, protocol, tmp_path, command="run"):
    return main([
        command, "--model", MODEL, "--dataset", dataset, "--protocol", str(protocol),
        "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu", "--no-progress",
    ])


def test_records_carry_the_data_hash_and_one_dataset_entry(blob_folder, tiny_protocol_file, tmp_path):
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path) == 0
    (train,), _ = read_records(tmp_path / "records", kind="train")
    (evaluation,), _ = read_records(tmp_path / "records", kind="eval")
    assert len(train["dataset"]["data_hash"]) == 12
    assert evaluation["dataset"]["data_hash"] == train["dataset"]["data_hash"]
    assert train["dataset"]["split_file"] == evaluation["dataset"]["split_file"]


def test_a_mask_edited_in_place_refuses_to_resume_and_names_the_case(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path) == 0
    mask_path = blob_folder / "masks" / "case03.png"
    mask = np.array(Image.open(mask_path))
    mask[:4, :4] = 255
    Image.fromarray(mask).save(mask_path)
    capsys.readouterr()
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path) != 0
    output = capsys.readouterr()
    message = output.err + output.out
    assert "is not resumed" in message and "case03 (mask)" in message and "1 case(s) changed content" in message
    assert "resuming" not in output.out
    assert len(read_records(tmp_path / "records", kind="train")[0]) == 1  # nothing written for the refused run


def test_a_changed_folder_option_refuses_to_resume_and_names_the_option(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli(f"folder:{blob_folder}?name=blobs", tiny_protocol_file, tmp_path) == 0
    capsys.readouterr()
    assert run_cli(f"folder:{blob_folder}?name=blobs&eval_policy=sliding_window", tiny_protocol_file, tmp_path) != 0
    output = capsys.readouterr()
    assert "option eval_policy" in output.err + output.out
    assert "resuming" not in output.out


def test_the_same_data_resumes(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path) == 0
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path) == 0
    assert "resuming" in capsys.readouterr().out


@pytest.mark.parametrize("dataset_name", ["..", ".hidden"])
def test_a_dataset_name_that_is_not_one_folder_is_refused(blob_folder, tiny_protocol_file, tmp_path, capsys, dataset_name):
    assert run_cli(f"folder:{blob_folder}?name={dataset_name}", tiny_protocol_file, tmp_path) != 0
    assert "dataset name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not any(tmp_path.parent.glob("*.pt"))


def test_a_protocol_named_dot_dot_is_refused(blob_folder, tiny_protocol_file, tmp_path, capsys):
    contents = json.loads(tiny_protocol_file.read_text())
    path = tmp_path / "dotdot.json"
    path.write_text(json.dumps({**contents, "name": ".."}))
    assert run_cli(f"folder:{blob_folder}", path, tmp_path) != 0
    assert "protocol name '..'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_failed_train_record_is_replaced_by_the_later_ok_one_and_wall_time_covers_the_resumed_part(
    blob_folder, tiny_protocol_file, tmp_path, monkeypatch
):
    import functools

    import usemabench.runners.experiment as experiment

    train = experiment.train
    monkeypatch.setattr(experiment, "train", functools.partial(train, stop_after_steps=3))
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path, command="train") == 1
    (failed,), _ = read_records(tmp_path / "records", kind="train")
    assert failed["status"] == "failed"
    monkeypatch.setattr(experiment, "train", train)
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path, command="train") == 0
    (record,), _ = read_records(tmp_path / "records", kind="train")  # the same file name: one record, now ok
    assert record["status"] == "ok" and record["metrics"]["resumed_from_step"] == 2
    assert record["cost"]["wall_seconds"] >= record["cost"]["train_seconds"]


def test_a_run_folder_without_a_data_record_is_checked_by_its_checkpoint(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path) == 0
    next((tmp_path / "runs").rglob("data.json")).unlink()  # as a folder made before data hashes were kept
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path, command="evaluate") == 0  # same data: fine
    (blob_folder / "images" / "case00.png").write_bytes((blob_folder / "images" / "case01.png").read_bytes())
    capsys.readouterr()
    assert run_cli(f"folder:{blob_folder}", tiny_protocol_file, tmp_path, command="evaluate") != 0
    assert "it is not resumed or evaluated" in capsys.readouterr().err
