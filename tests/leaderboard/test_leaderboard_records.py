"""Record files: one name per run, and a failed re-run never replaces an ok result."""

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from record_factory import _entities, _environment
from reliability_cases import RECORDS, BadInput, params
from usemabench.core.schema import RECORD_SCHEMA, RecordError, schema_problems
from usemabench.leaderboard.aggregate import aggregate
from usemabench.core.records import (
    make_record, model_entry, read_record, read_records, record_filename, write_record,
)
from usemabench.leaderboard.store import load_records, shipped_records_dir

RECORDS_DIR = Path(__file__).resolve().parents[2] / "leaderboard" / "records"


def _eval(status: str) -> dict:
    metrics = {"dice": {"mean": 0.8, "per_class": {"disk": 0.8}}} if status == "ok" else {}
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


@pytest.mark.skipif(not RECORDS_DIR.is_dir(), reason="not a source checkout (no leaderboard/records)")
def test_committed_record_names_end_in_the_hash_a_rerun_would_write():
    """Benchmarks rename the readable prefix; the hash at the end is `record_filename`'s (then the status,
    for a failure written beside an ok record)."""
    wrong = []
    for path in sorted(RECORDS_DIR.rglob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        expected = record_filename(record).rsplit("_", 1)[-1]
        beside = expected.replace(".json", f"_{record['status']}.json")
        if not (path.name.endswith(f"_{expected}") or (record["status"] != "ok" and path.name.endswith(f"_{beside}"))):
            wrong.append(f"{path.relative_to(RECORDS_DIR)} (expected ..._{expected})")
    assert not wrong, f"record names that a re-run would not overwrite: {wrong}"


def _mutated(record: dict, case: BadInput) -> dict:
    """A deep copy of `record` with the case's field replaced (or deleted)."""
    record = copy.deepcopy(record)
    *parents, key = case.data["path"]
    target = record
    for parent in parents:
        target = target[parent]
    if case.data.get("delete"):
        del target[key]
    else:
        target[key] = case.data["value"]
    return record


@pytest.mark.parametrize("case", params(RECORDS))
def test_a_wrongly_typed_record_is_skipped_by_name_and_never_replaces_the_valid_one(tmp_path, case):
    valid = _eval("ok")
    write_record(valid, tmp_path)
    bad = tmp_path / "duplicate" / record_filename(valid)  # the same run, typed wrong
    bad.parent.mkdir()
    bad.write_text(json.dumps(_mutated(valid, case)))
    records, skipped = read_records(tmp_path)
    assert [record["metrics"] for record in records] == [valid["metrics"]]
    assert [item.path for item in skipped] == [bad] and re.search(case.message, skipped[0].reason), skipped[0].reason
    with pytest.raises(RecordError, match=case.message):  # and a writer cannot make such a record
        write_record(_mutated(valid, case), tmp_path / "written")
    assert not (tmp_path / "written").exists()


def test_a_bad_duplicate_leaves_the_reference_its_rank_and_p_values(fabricated_records, tmp_path):
    records = tmp_path / "records"
    shutil.copytree(fabricated_records, records)
    valid_path = next(path for path in sorted(records.rglob("eval_usema_s_toy_*.json")))
    duplicate = json.loads(valid_path.read_text())
    duplicate["metrics"] = []
    (valid_path.parent / "zz_duplicate.json").write_text(json.dumps(duplicate))
    before, after = aggregate(load_records(fabricated_records)), aggregate(load_records(records))
    table = next(board for board in after.groups if board.dataset == "toy").table
    assert table[table["model"] == "usema_s"].iloc[0]["rank"] == 1
    assert table.equals(next(board for board in before.groups if board.dataset == "toy").table)  # p-values too
    problem = [item for item in load_records(records).problems if item.path.endswith("zz_duplicate.json")]
    assert problem and "metrics: expected object, got []" in problem[0].reason


@pytest.mark.skipif(not RECORDS_DIR.is_dir(), reason="not a source checkout (no leaderboard/records)")
def test_every_committed_and_shipped_record_follows_the_schema():
    committed = sorted(RECORDS_DIR.rglob("*.json"))
    shipped = sorted(shipped_records_dir().rglob("*.json"))
    problems = {str(path): schema_problems(json.loads(path.read_text()), RECORD_SCHEMA) for path in committed + shipped}
    assert len(committed) > 100 and not {path: found for path, found in problems.items() if found}
