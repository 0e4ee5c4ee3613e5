"""The main job (`usemabench run` with no arguments), shrunk to one model, one profile size and a tiny protocol."""

from __future__ import annotations

import pytest

import usemabench.runners.main_job as main_job
from usemabench.cli import main
from usemabench.core.records import read_records
from usemabench.runners.protocol import load_protocol


def test_main_job_trains_evaluates_profiles_and_builds_the_leaderboard(blob_folder, tiny_protocol_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(main_job, "DEFAULT_FAMILY_MODELS", ("nnunet", "not_a_registered_model"))
    monkeypatch.setattr(main_job, "DATASET", f"folder:{blob_folder}")
    monkeypatch.setattr(main_job, "PROTOCOL", str(tiny_protocol_file))
    monkeypatch.setattr(main_job, "PROFILE_PLAN", {"infer": (32,)})
    monkeypatch.setattr(main_job, "PROFILE_SETTINGS", {"repeats": 1, "warmup": 0, "batch": 1})
    argv = ["run", "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "leaderboard" / "records"),
            "--leaderboard-dir", str(tmp_path / "leaderboard"), "--reports-dir", str(tmp_path / "reports"),
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    output = capsys.readouterr().out
    assert "model 'not_a_registered_model' is not registered; skipped" in output
    assert "trained and evaluated 1 models, skipped 0 whose records exist" in output
    assert "GMACs" in output  # the profiler's summary line
    records, skipped = read_records(tmp_path / "leaderboard" / "records")
    assert not skipped
    assert sorted((record["kind"], record["model"]["name"]) for record in records) == [
        ("eval", "nnunet_small"), ("profile", "nnunet_small"), ("train", "nnunet_small")
    ]
    assert "nnunet_small" in (tmp_path / "leaderboard" / "LEADERBOARD.md").read_text()
    assert (tmp_path / "reports" / "index.html").is_file()

    assert main(argv) == 0
    output = capsys.readouterr().out
    assert "(record exists)" in output and "GMACs" not in output
    assert "trained and evaluated 0 models, skipped 1 whose records exist" in output
    assert len(read_records(tmp_path / "leaderboard" / "records")[0]) == 3


@pytest.mark.parametrize(("status", "code"), [("ok", 0), ("unsupported", 0), ("oom", 1), ("failed", 1)])
def test_a_failed_or_oom_profile_fails_the_main_job(status, code, tmp_path, monkeypatch):
    monkeypatch.setattr(main_job, "default_models", lambda log: ["nnunet_small"])
    monkeypatch.setattr(main_job, "run_sweep", lambda requests, log: [])  # training and evaluation: nothing to do
    monkeypatch.setattr(main_job, "profile_sweep", lambda *args, **kwargs: [{"status": status}])
    monkeypatch.setattr(main_job, "build_leaderboard", lambda *args: None)
    assert main_job.run_main_job(tmp_path / "runs", tmp_path / "records", device="cpu", log=lambda line: None) == code


def test_the_profile_plan_covers_the_training_resolution_in_both_modes(tmp_path, monkeypatch):
    """The leaderboard's MACs and latency come from the inference profile at the training resolution."""
    calls = []
    monkeypatch.setattr(main_job, "profile_sweep", lambda models, sides, modes, **kwargs: calls.append((modes, sides)) or [])
    main_job.profile_models(["nnunet_small"], tmp_path / "profile", "cpu", log=lambda line: None)
    side = load_protocol(main_job.PROTOCOL).resolution[0]
    assert {mode for modes, sides in calls for mode in modes if side in sides} == {"infer", "train"}
