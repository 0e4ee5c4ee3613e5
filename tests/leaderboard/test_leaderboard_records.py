"""Record files: one name per run, and a failed re-run never replaces an ok result."""

import json
from pathlib import Path

import pytest

from record_factory import _entities, _environment
from usemabench.leaderboard.aggregate import aggregate
from usemabench.leaderboard.records import make_record, model_entry, read_record, record_filename, write_record
from usemabench.leaderboard.store import load_records

RECORDS = Path(__file__).resolve().parents[2] / "leaderboard" / "records"


def _eval(status: str) -> dict:
    metrics = {"dice": {"mean": 0.8}} if status == "ok" else {}
    return make_record(
        "eval", status=status, seed=0, resolution=[64, 64], metrics=metrics, environment=_environment(),
        error=None if status == "ok" else "evaluation crashed", **_entities("unet", "toy"),
    )


def _profile(batch: int) -> dict:
    return make_record(
        "profile", model=model_entry("unet", {}), resolution=[64, 64], cost={"mode": "infer", "batch": batch},
        environment=_environment(),
    )


def test_a_failed_rerun_is_written_beside_the_ok_record_never_over_it(tmp_path):
    ok_path = write_record(_eval("ok"), tmp_path)
    failed_path = write_record(_eval("failed"), tmp_path)
    assert failed_path != ok_path and failed_path.name == ok_path.name.replace(".json", "_failed.json")
    assert read_record(ok_path)["status"] == "ok" and read_record(failed_path)["status"] == "failed"
    assert write_record(_eval("oom"), tmp_path).name.endswith("_oom.json")

    board = aggregate(load_records(tmp_path)).groups[0]
    run = board.runs.iloc[0]
    assert run["status"] == "ok" and run["record"] == ok_path.name and "3 eval records" in run["note"]
    assert board.table.iloc[0]["dice_mean"] == pytest.approx(0.8)


def test_a_failure_replaces_only_a_failure(tmp_path):
    first = write_record(_eval("failed"), tmp_path)
    assert write_record(_eval("failed"), tmp_path) == first
    assert write_record(_eval("ok"), tmp_path) == first  # the re-run that worked is the run's record
    assert read_record(first)["status"] == "ok"


def test_profiles_at_another_batch_get_their_own_file():
    assert record_filename(_profile(16)) != record_filename(_profile(1))
    assert "_batch16_" in record_filename(_profile(16))


@pytest.mark.skipif(not RECORDS.is_dir(), reason="not a source checkout (no leaderboard/records)")
def test_committed_record_names_end_in_the_hash_a_rerun_would_write():
    """Benchmarks rename the readable prefix; the hash at the end is `record_filename`'s (then the status,
    for a failure written beside an ok record)."""
    wrong = []
    for path in sorted(RECORDS.rglob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        expected = record_filename(record).rsplit("_", 1)[-1]
        beside = expected.replace(".json", f"_{record['status']}.json")
        if not (path.name.endswith(f"_{expected}") or (record["status"] != "ok" and path.name.endswith(f"_{beside}"))):
            wrong.append(f"{path.relative_to(RECORDS)} (expected ..._{expected})")
    assert not wrong, f"record names that a re-run would not overwrite: {wrong}"
