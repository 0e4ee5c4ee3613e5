"""`usemabench compare` (alias `bench`) as a new user runs it: from an empty folder, one command, real data.

The shipped reference records are stood in for by records this test makes (the reference trained once under
a tiny protocol into a temporary package-records folder); the comparison must reuse them, not retrain.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usemabench.cli import main
from usemabench.leaderboard import store

DATASET = "isbi2012_em"  # 30 real EM slices, 5 test cases: the case where p cannot go below 0.0625
TINY_PROTOCOL = {
    "name": "tiny-test",
    "description": "test only: two iterations, just enough to write real records",
    "budget": "2 iterations of batch 2 at 64x64",
    "resolution": [64, 64], "batch_size": 2, "epochs": 1, "iterations_per_epoch": 2,
    "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.0001, "betas": [0.9, 0.999]},
    "schedule": {"name": "constant"},
    "loss": {"dice_weight": 1.0, "ce_weight": 1.0, "deep_supervision": True},
    "augmentation": "light", "precision": "fp32", "precision_overrides": {}, "grad_clip_norm": 12.0,
    "seeds": [0, 1], "num_workers": 0, "checkpoint_every_iterations": 0,
    "evaluation": {"checkpoint": "last", "nsd_tolerance_px": 2.0, "saved_cases": 0},
}


def _files(folder: Path) -> dict[str, int]:
    return {path.relative_to(folder).as_posix(): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def setting(shared_data, tmp_path, monkeypatch):
    """A tiny protocol file, reference records in a stand-in package folder, and an empty working folder."""
    if not (shared_data / DATASET).is_dir():
        pytest.skip(f"{DATASET} not in {shared_data}")
    monkeypatch.setenv("USEMABENCH_DATA", str(shared_data))
    monkeypatch.setenv("USEMABENCH_CACHE", str(tmp_path / "cache"))
    protocol = tmp_path / "tiny-test.json"
    protocol.write_text(json.dumps(TINY_PROTOCOL))
    shipped = tmp_path / "package" / "reference" / "records"
    monkeypatch.setattr(store, "shipped_records_dir", lambda: shipped)
    for seed in ("0", "1"):
        assert main(["run", "--model", "usema_tiny", "--dataset", DATASET, "--protocol", str(protocol), "--seed", seed,
                     "--records-dir", str(shipped), "--runs-dir", str(tmp_path / "reference-runs"), "--device", "cpu",
                     "--no-progress"]) == 0
    empty = tmp_path / "user"
    empty.mkdir()
    monkeypatch.chdir(empty)
    return protocol, shipped, empty


@pytest.mark.data
@pytest.mark.slow
def test_one_command_compares_a_user_model_and_reuses_the_shipped_reference(setting, user_module, capsys):
    protocol, shipped, folder = setting
    user_module("my_net").rename(folder / "my_models.py")
    shipped_before = _files(shipped)
    arguments = ["--model-module", "my_models", "compare", "my_net", "--dataset", DATASET, "--protocol", str(protocol),
                 "--resolutions", "96", "--device", "cpu", "--no-progress"]
    assert main(arguments) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "2 of 4 runs found in the records; training 2" in captured.err

    # The reference was not retrained: no run folder, no record of it in the user's folder, the package folder untouched.
    assert [path.name for path in (folder / "runs").iterdir()] == ["my_net"]
    user_records = [json.loads(path.read_text()) for path in (folder / "leaderboard" / "records").rglob("*.json")]
    assert {(record["kind"], record["model"]["name"]) for record in user_records} == {
        ("train", "my_net"), ("eval", "my_net"), ("profile", "my_net"), ("profile", "usema_tiny")}
    assert _files(shipped) == shipped_before

    page = (folder / "reports" / "compare" / "my_net_vs_usema_tiny.md").read_text()
    assert captured.out.endswith(page)  # printed after the training's epoch lines
    assert "usema_tiny: 2 evaluated run(s) (2 from the shipped reference records)" in page
    assert "my_net: 2 evaluated run(s) (2 from your records folder)" in page
    assert f"## {DATASET} · tiny-test" in page and "| p (Holm) | smallest possible p |" in page
    assert "cannot give p below 0.0625" in page  # 5 test cases: the exact test's floor, said in words
    assert "## Missing" not in page  # everything was run, profiled and found
    assert "| 96×96 | my_net |" in page and "| 64×64 | usema_tiny |" in page  # chosen size and the protocol's
    html = (folder / "reports" / "compare" / "my_net_vs_usema_tiny.html").read_text()
    assert "<details" in html and "cannot give p below 0.0625" in html

    # A second call finds everything: nothing is trained or profiled again.
    assert main(arguments) == 0
    assert "4 of 4 runs found in the records; training 0" in capsys.readouterr().err
    assert len(list((folder / "leaderboard" / "records").rglob("*.json"))) == len(user_records)


@pytest.mark.data
@pytest.mark.slow
def test_no_run_names_what_is_missing_and_the_command_that_fills_it(setting, user_module, capsys):
    protocol, _, folder = setting
    user_module("my_net").rename(folder / "my_models.py")
    assert main(["--model-module", "my_models", "compare", "my_net", "--dataset", DATASET, "--protocol", str(protocol),
                 "--resolutions", "96", "--device", "cpu", "--no-run"]) == 0
    page = capsys.readouterr().out
    assert "## Missing (and the command that fills it)" in page
    assert (f"my_net on {DATASET}, seed 1: no record with this protocol, split, model config and data: "
            f"`usemabench --model-module my_models run --model my_net --dataset {DATASET} --protocol {protocol} --seed 1`") in page
    assert ("usema_tiny: no infer profile at 64, 96 px on this device: `usemabench --model-module my_models profile "
            "--models usema_tiny --resolutions 64,96 --mode infer --device cpu --precision fp32 --in-channels 1 "
            "--num-classes 2`") in page
    assert "usema_tiny on" not in page  # its runs are in the (stand-in) shipped records
    assert not (folder / "runs").exists()
