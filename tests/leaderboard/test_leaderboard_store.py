"""Reading records: bad files are reported by name and skipped, never fatal, never hiding other rows."""

import shutil

import pytest

from usemabench.leaderboard.fields import eval_fields, lookup, profile_fields
from usemabench.leaderboard.store import load_records


def test_corrupt_and_future_records_are_named_and_skipped(fabricated_records):
    record_set = load_records(fabricated_records)
    problems = {problem.path: problem.reason for problem in record_set.problems}
    assert set(problems) == {"broken.json", "future.json"}
    assert "not a readable JSON record" in problems["broken.json"]
    assert "schema_version 99 is not supported" in problems["future.json"]
    assert record_set.counts == {"train": 14, "eval": 12, "profile": 32, "bench": 1}
    assert len(record_set.evals) == 12 and set(record_set.per_case["record_path"]) == set(record_set.evals["record_path"])


def test_a_bad_per_case_csv_is_named_and_its_eval_row_kept(fabricated_records, tmp_path):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    csv_path = records / "toy" / "unet" / "seed1" / "per_case.csv"
    csv_path.write_text("case_id,class,iou\ncase_00,left,0.5\n")
    record_set = load_records(records)
    problem = next(problem for problem in record_set.problems if problem.path == "toy/unet/seed1/per_case.csv")
    assert "lacks column(s) dice" in problem.reason and "toy/unet/seed1/eval_unet" in problem.reason
    kept = record_set.evals[record_set.evals["record_path"].str.startswith("toy/unet/seed1/")]
    assert len(kept) == 1 and kept["dice"].notna().all()


def test_missing_records_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_records(tmp_path / "nowhere")


def test_fields_try_candidate_paths_and_tolerate_missing_ones():
    assert lookup({"cost": {"params": {"total": 5, "trainable": 4}}}, (("cost", "params", "total"), ("cost", "params"))) == 5
    assert lookup({"cost": {"params": 7}}, (("cost", "params", "total"), ("cost", "params"))) == 7
    assert lookup({"cost": {}}, (("cost", "params"),)) is None
    minimal = {"kind": "profile", "status": "oom", "cost": {"mode": "train", "latency_ms": "n/a"}, "environment": {}}
    row = profile_fields(minimal)
    assert row["mode"] == "train" and row["latency_ms"] is None and row["macs"] is None and row["resolution"] is None
    row = eval_fields({"kind": "eval", "status": "ok", "metrics": {"dice": 0.8, "hd95": {"mean": 3.0}}, "seed": True})
    assert row["dice"] == 0.8 and row["hd95"] == 3.0 and row["dice_per_class"] == {} and row["seed"] is None
