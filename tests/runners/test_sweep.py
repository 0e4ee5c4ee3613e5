"""`usemabench sweep`: skips finished combinations, records a failure and goes on, submits through submitit."""

from __future__ import annotations

import pytest

import usemabench.runners.experiment as experiment
import usemabench.runners.sweep as sweep
import usemabench.zoo.registry as registry
from usemabench.cli import main
from usemabench.core.records import read_records
from usemabench.runners.experiment import ExperimentRequest
from usemabench.runners.sweep import combinations, run_in_job, run_sweep
from usemabench.zoo.registry import import_model_module


def sweep_cli(blob_folder, protocol, tmp_path, seeds="0,1"):
    return main([
        "sweep", "--models", "nnunet_small", "--datasets", f"folder:{blob_folder}", "--seeds", seeds,
        "--protocol", str(protocol), "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"),
        "--device", "cpu", "--no-progress",
    ])


def test_sweep_goes_on_past_a_failure_then_skips_what_is_done(blob_folder, tiny_protocol_file, tmp_path, monkeypatch, capsys):
    real_train = experiment.train

    def fails_for_seed_0(*args, **kwargs):
        if kwargs["seed"] == 0:
            raise RuntimeError("seed 0 crashed")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(experiment, "train", fails_for_seed_0)
    assert sweep_cli(blob_folder, tiny_protocol_file, tmp_path) == 1
    assert "1 failed, 1 ok" in capsys.readouterr().out
    records, _ = read_records(tmp_path / "records")  # seed 0 never reached evaluation: no eval record
    assert sorted((r["kind"], r["seed"], r["status"]) for r in records) == [("eval", 1, "ok"), ("train", 0, "failed"), ("train", 1, "ok")]

    monkeypatch.setattr(experiment, "train", real_train)
    assert sweep_cli(blob_folder, tiny_protocol_file, tmp_path) == 0
    output = capsys.readouterr().out
    assert "skip   nnunet_small" in output and "seed 1 (record exists)" in output and "1 ok, 1 skipped" in output
    evals, _ = read_records(tmp_path / "records", kind="eval")
    assert sorted((record["seed"], record["status"]) for record in evals) == [(0, "ok"), (1, "ok")]


def test_grid_is_dataset_major_over_models_and_seeds():
    template = ExperimentRequest(model="", dataset="")
    grid = [(r.dataset, r.model, r.seed) for r in combinations(["a", "b"], ["x", "y"], [0, 1], template)]
    assert grid[:4] == [("x", "a", 0), ("x", "a", 1), ("x", "b", 0), ("x", "b", 1)] and len(grid) == 8


def test_slurm_submission_through_submitit(blob_folder, tiny_protocol_file, tmp_path):
    pytest.importorskip("submitit")
    template = ExperimentRequest(model="nnunet_small", dataset=f"folder:{blob_folder}", protocol=str(tiny_protocol_file),
                                 runs_dir=tmp_path / "runs", records_dir=tmp_path / "records", device="cpu", progress=False)
    items = run_sweep([template], slurm={"folder": tmp_path / "slurm", "cluster": "debug", "timeout_min": 5})
    assert [item.status for item in items] == ["submitted"]
    evals, _ = read_records(tmp_path / "records", kind="eval")
    assert [record["status"] for record in evals] == ["ok"]


def test_slurm_jobs_import_the_users_model_modules(user_module, blob_folder, tiny_protocol_file, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    path = user_module("slurm_models_x1")
    import_model_module(str(path))  # the submitting process knows the model (as `--model-module` makes it) ...
    template = ExperimentRequest(model="slurm_models_x1", dataset=f"folder:{blob_folder}", protocol=str(tiny_protocol_file),
                                 runs_dir=tmp_path / "runs", records_dir=tmp_path / "records", device="cpu", progress=False)
    submitted = []

    def fresh_process(request, modules):  # ... a job starts without it, as a new process on a node would
        submitted.append(modules)
        monkeypatch.delitem(registry._REGISTRY, "slurm_models_x1", raising=False)
        return run_in_job(request, modules)

    monkeypatch.setattr(sweep, "run_in_job", fresh_process)
    slurm = {"folder": tmp_path / "slurm", "cluster": "debug", "timeout_min": 5, "model_modules": [str(path)]}
    assert [item.status for item in run_sweep([template], slurm=slurm)] == ["submitted"]
    assert submitted == [[str(path.resolve())]]
    evals, _ = read_records(tmp_path / "records", kind="eval")
    assert [(record["model"]["name"], record["status"]) for record in evals] == [("slurm_models_x1", "ok")]


def test_unknown_models_and_datasets_stop_the_sweep_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiment, "train", lambda *args, **kwargs: pytest.fail("a combination ran"))
    argv = ["sweep", "--models", "nnunet_small,not_a_model", "--datasets", "synthetic,folder:/nonexistent,/nonexistent/x",
            "--seeds", "0", "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "sweep not started: unknown model 'not_a_model'" in captured.err
    assert "/nonexistent: dataset folder not found" in captured.err and "dataset folder not found: /nonexistent/x" in captured.err
    assert not (tmp_path / "records").exists()
