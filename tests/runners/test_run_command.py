"""`usemabench train | evaluate | run` as a user types them, on a tiny folder dataset."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

import usemabench.runners.experiment as experiment
import usemabench.runners.main_job as main_job
from usemabench.cli import main
from usemabench.core.records import read_records
from usemabench.runners.protocol import load_protocol
from usemabench.zoo import registry

MODEL = "nnunet_small"


def run_cli(command, blob_folder, protocol, tmp_path, *extra):
    return main([
        command, "--model", MODEL, "--dataset", f"folder:{blob_folder}", "--protocol", str(protocol),
        "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu",
        "--no-progress", *extra,
    ])


def test_run_writes_train_and_eval_records_with_their_files(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli("run", blob_folder, tiny_protocol_file, tmp_path) == 0
    assert "test dice" in capsys.readouterr().out
    records_dir = tmp_path / "records"
    (train,), _ = read_records(records_dir, kind="train")
    (evaluation,), _ = read_records(records_dir, kind="eval")
    protocol = load_protocol(tiny_protocol_file)
    for record in (train, evaluation):
        assert record["status"] == "ok"
        assert record["model"]["name"] == MODEL and record["dataset"]["name"] == "blobs"
        assert record["protocol"] == {"name": "tiny", "hash": protocol.hash}
        assert record["resolution"] == [32, 32] and record["seed"] == 0
        assert record["environment"]["precision"] == "fp32"
    assert train["metrics"]["steps"] == 4 and train["cost"]["params"]["total"] > 0
    assert evaluation["dataset"]["split"] == "test"
    dice = evaluation["metrics"]["dice"]
    assert set(dice) == {"mean", "per_class"} and 0.0 <= dice["mean"] <= 1.0
    assert set(evaluation["metrics"]) >= {"dice", "iou", "hd95", "nsd", "hd95_pooled"}
    assert set(evaluation["metrics"]["settings"]["hd95_conventions"]) == {"hd95", "hd95_pooled"}
    with open(records_dir / evaluation["files"]["per_case"], newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["case_id", "class", "dice", "iou", "hd95", "nsd", "hd95_pooled"]
    assert sum(float(row["dice"]) for row in rows) / len(rows) == pytest.approx(dice["mean"], rel=1e-6)
    for kind in ("predictions", "labels", "images"):
        assert len(list((records_dir / evaluation["files"][kind]).glob("*.png"))) == len(rows)  # 1 test case <= saved_cases
    assert (records_dir / train["files"]["log"]).is_file()
    assert evaluation["files"]["train_record"] == train["_path"].split("/")[-1]


def test_rerun_resumes_the_finished_run_and_rewrites_the_same_records(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli("train", blob_folder, tiny_protocol_file, tmp_path) == 0
    assert not read_records(tmp_path / "records", kind="eval")[0]
    assert run_cli("evaluate", blob_folder, tiny_protocol_file, tmp_path) == 0
    first = json.loads(next((tmp_path / "records").glob("eval_*.json")).read_text())
    assert run_cli("run", blob_folder, tiny_protocol_file, tmp_path) == 0
    assert "resuming" in capsys.readouterr().out
    assert len(list((tmp_path / "records").glob("*.json"))) == 2
    again = json.loads(next((tmp_path / "records").glob("eval_*.json")).read_text())
    assert again["metrics"] == first["metrics"]


def test_rerun_of_a_finished_run_keeps_its_train_record(blob_folder, tiny_protocol_file, tmp_path):
    assert run_cli("train", blob_folder, tiny_protocol_file, tmp_path) == 0
    path = next((tmp_path / "records").glob("train_*.json"))
    first = json.loads(path.read_text())
    assert run_cli("run", blob_folder, tiny_protocol_file, tmp_path) == 0  # loads last.pt, trains no step
    again = json.loads(path.read_text())
    assert again["cost"] == first["cost"]  # its wall time and memory are the training's, not this process's
    assert again["metrics"] == first["metrics"] and again["metrics"]["resumed_from_step"] is None


def test_evaluate_before_training_is_a_clear_error(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli("evaluate", blob_folder, tiny_protocol_file, tmp_path) == 1
    assert "train this combination first" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def test_bad_arguments_fail_without_records(blob_folder, tiny_protocol_file, tmp_path, capsys):
    assert run_cli("run", blob_folder, tiny_protocol_file, tmp_path, "--model-config", "no_such_option=3") == 1
    assert "does not accept the config" in capsys.readouterr().err
    assert main(["run", "--model", "no_such_model", "--records-dir", str(tmp_path / "records")]) == 1
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def test_a_failure_during_training_is_recorded(blob_folder, tiny_protocol_file, tmp_path, monkeypatch, capsys):
    def broken_train(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(experiment, "train", broken_train)
    assert run_cli("run", blob_folder, tiny_protocol_file, tmp_path) == 1
    assert "training failed: RuntimeError: simulated crash" in capsys.readouterr().err
    (record,), _ = read_records(tmp_path / "records")  # no eval record: evaluation never ran
    assert (record["kind"], record["status"]) == ("train", "failed") and "simulated crash" in record["error"]


def test_a_failure_during_evaluation_is_recorded_beside_the_train_record(blob_folder, tiny_protocol_file, tmp_path, monkeypatch, capsys):
    def broken_evaluate(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(experiment, "evaluate_model", broken_evaluate)
    assert run_cli("run", blob_folder, tiny_protocol_file, tmp_path) == 1
    assert "evaluation failed: RuntimeError: simulated crash" in capsys.readouterr().err
    records, _ = read_records(tmp_path / "records")
    assert sorted((record["kind"], record["status"]) for record in records) == [("eval", "failed"), ("train", "ok")]


def test_a_type_error_inside_a_model_constructor_keeps_its_traceback(blob_folder, tiny_protocol_file, tmp_path, monkeypatch):
    registry.list_models()  # load the built-in families first, so they do not overwrite the test model later

    def broken_builder(in_channels, num_classes, **config):
        return len(in_channels)  # a bug: a TypeError raised while building

    info = registry.ModelInfo(name="test_broken", family="cnn", builder=broken_builder, paper="test", code="")
    monkeypatch.setitem(registry._REGISTRY, "test_broken", info)
    with pytest.raises(TypeError, match="has no len"):
        main(["train", "--model", "test_broken", "--dataset", f"folder:{blob_folder}", "--protocol", str(tiny_protocol_file),
              "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu"])
    assert not (tmp_path / "records").exists()


@pytest.mark.slow
@pytest.mark.data
def test_quick_run_on_a_shared_data_folder_as_a_user_types_it(shared_data, tiny_protocol_file, tmp_path, monkeypatch):
    monkeypatch.setenv("USEMABENCH_CACHE", str(tmp_path / "cache"))
    folder = shared_data / "dsb2018_stage1_test"
    assert run_cli("run", folder, tiny_protocol_file, tmp_path) == 0
    (evaluation,), _ = read_records(tmp_path / "records", kind="eval")
    assert evaluation["status"] == "ok" and evaluation["dataset"]["name"] == "dsb2018_stage1_test"
    assert evaluation["metrics"]["num_cases"] >= 1


@pytest.mark.slow
def test_torchrun_launches_the_same_command_on_two_processes(blob_folder, tiny_protocol_file, tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "usemabench", "run",
        "--model", MODEL, "--dataset", f"folder:{blob_folder}", "--protocol", str(tiny_protocol_file),
        "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu", "--no-progress",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.count("wrote ") == 2  # rank 0 only
    (train,), _ = read_records(tmp_path / "records", kind="train")
    assert train["cost"]["processes"] == 2 and train["metrics"]["steps"] == 4
    assert [record["status"] for record in read_records(tmp_path / "records", kind="eval")[0]] == ["ok"]


@pytest.mark.parametrize(("options", "named"), [
    (["--protocol", "quick"], "--protocol need --model"),
    (["--seed", "0", "--model-config", "width=4"], "--seed, --model-config need --model"),
])
def test_run_without_a_model_refuses_the_options_of_one_experiment(options, named, monkeypatch, capsys):
    monkeypatch.setattr(main_job, "run_main_job", lambda **kwargs: pytest.fail("the main job ran"))
    assert main(["run", *options]) == 1
    assert named in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "--model", MODEL, "--seed", "-1"], ["sweep", "--models", MODEL, "--seeds", "0,-1"]])
def test_a_negative_seed_is_refused(argv, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu"])
    assert "a seed is a whole number >= 0, got '-1'" in capsys.readouterr().err
