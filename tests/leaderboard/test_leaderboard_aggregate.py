"""Aggregation of fabricated records: ranking, missing and failed runs, paired tests, costs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from record_factory import MODEL_COSTS, RESOLUTION
from usemabench.leaderboard.aggregate import aggregate, choose_reference
from usemabench.leaderboard.store import load_records


@pytest.fixture(scope="module")
def leaderboard(fabricated_records):
    return aggregate(load_records(fabricated_records))


def board_of(leaderboard, dataset):
    return next(board for board in leaderboard.groups if board.dataset == dataset)


def test_rows_are_ranked_by_dice_and_keep_partial_runs(leaderboard):
    table = board_of(leaderboard, "toy").table.set_index("model")
    assert list(table.index) == ["usema_s", "unet", "umamba_bot", "transunet"]
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table.at["umamba_bot", "status"] == "partial" and table.at["umamba_bot", "seeds_ok"] == 2
    assert "seed 1: not evaluated" in table.at["umamba_bot", "note"]
    assert table.at["transunet", "status"] == "partial"
    assert "seed 2: train oom (CUDA out of memory" in table.at["transunet", "note"]


def test_models_absent_from_a_dataset_are_listed_as_missing(leaderboard):
    board = board_of(leaderboard, "other")
    table = board.table.set_index("model")
    assert set(table.index) == {"usema_s", "unet", "umamba_bot", "transunet"}
    assert table.at["transunet", "status"] == "missing" and np.isnan(table.at["transunet", "rank"])
    assert list(board.table["model"][-2:]) == ["transunet", "umamba_bot"]  # unranked rows last, by name
    runs = board.runs.set_index("model")
    assert runs.at["transunet", "status"] == "missing"


def test_runs_table_names_every_seed_and_its_record(leaderboard):
    runs = board_of(leaderboard, "toy").runs
    assert len(runs) == 4 * 3
    failed = runs[runs["status"].eq("train oom")].iloc[0]
    assert failed["model"] == "transunet" and failed["seed"] == "2"
    assert failed["record"].startswith("toy/transunet/seed2/train_") and "CUDA out of memory" in failed["note"]


def _case_scores_from_csvs(records: Path, model: str) -> pd.Series:
    """Independent recomputation: mean over classes per case and seed, then mean over seeds."""
    frames = []
    for seed_dir in sorted((records / "toy" / model).glob("seed*")):
        if (seed_dir / "per_case.csv").exists():
            frames.append(pd.read_csv(seed_dir / "per_case.csv").groupby("case_id")["dice"].mean())
    return pd.concat(frames, axis=1).mean(axis=1)


def test_paired_test_matches_scipy_on_the_per_case_csvs(leaderboard, fabricated_records):
    table = board_of(leaderboard, "toy").table.set_index("model")
    reference = _case_scores_from_csvs(fabricated_records, "usema_s")
    p_values = {}
    for model in ("unet", "umamba_bot", "transunet"):
        scores = _case_scores_from_csvs(fabricated_records, model)
        p_values[model] = stats.wilcoxon(scores - reference).pvalue
        assert table.at[model, "p_value"] == pytest.approx(p_values[model])
        assert table.at[model, "delta_dice"] == pytest.approx((scores - reference).mean())
        assert table.at[model, "delta_dice_ci_low"] < table.at[model, "delta_dice"] < table.at[model, "delta_dice_ci_high"]
        assert table.at[model, "dice_cases_std"] == pytest.approx(scores.std(ddof=1))
    ordered = sorted(p_values.values())
    assert table["p_holm"].max() == pytest.approx(max(3 * ordered[0], 2 * ordered[1], ordered[2]))
    assert np.isnan(table.at["usema_s", "p_value"]) and table.at["usema_s", "is_reference"]


def test_costs_come_from_profiles_and_training_runs_at_the_training_resolution(leaderboard):
    row = board_of(leaderboard, "toy").table.set_index("model").loc["usema_s"]
    params, macs_per_pixel, _, ms_per_pixel, _ = MODEL_COSTS["usema_s"]
    pixels = RESOLUTION * RESOLUTION
    assert row["resolution"] == f"{RESOLUTION}x{RESOLUTION}"
    assert row["params"] == params
    assert row["macs"] == pytest.approx(macs_per_pixel * pixels)  # the infer profile, not the 512² one
    assert row["latency_ms"] == pytest.approx(ms_per_pixel * pixels)
    assert row["peak_train_memory_bytes"] == 2.0e9 and row["peak_train_memory_source"] == "train run"


def test_reference_falls_back_to_a_usema_model_or_none():
    assert choose_reference(["unet", "usema_s"], "usema_s")[0] == "usema_s"
    name, note = choose_reference(["unet", "usema_t_full", "usema_t"], "usema_s")
    assert name == "usema_t" and "(usema_s has no evaluated run here)" in note
    assert choose_reference(["unet"], "usema_s") == (None, "no paired tests: neither usema_s nor another USEMA model has an evaluated run here")


def test_reference_option_changes_the_paired_tests(fabricated_records):
    board = board_of(aggregate(load_records(fabricated_records), reference="unet"), "toy")
    table = board.table.set_index("model")
    assert board.reference == "unet" and table.at["unet", "is_reference"]
    assert table.at["usema_s", "delta_dice"] > 0


def test_an_ok_record_wins_over_a_failed_duplicate_and_per_class_falls_back_to_cases(fabricated_records, tmp_path):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    seed_dir = records / "toy" / "unet" / "seed0"
    eval_path = next(seed_dir.glob("eval_*.json"))
    record = json.loads(eval_path.read_text())
    record["metrics"]["dice"].pop("per_class")
    eval_path.write_text(json.dumps(record))
    failed = dict(record, status="failed", error="evaluation crashed\ntraceback...", metrics={})
    (seed_dir / "zz_failed_duplicate.json").write_text(json.dumps(failed))
    board = board_of(aggregate(load_records(records)), "toy")
    run = board.runs[(board.runs["model"] == "unet") & (board.runs["seed"] == "0")].iloc[0]
    assert run["status"] == "ok" and "2 eval records" in run["note"]
    per_case = pd.read_csv(seed_dir / "per_case.csv")
    per_class = board.per_class.set_index("model")
    seeds = [json.loads(next((records / "toy" / "unet" / f"seed{s}").glob("eval_*.json")).read_text()) for s in (1, 2)]
    expected_left = np.mean([per_case[per_case["class"] == "left"]["dice"].mean()] + [r["metrics"]["dice"]["per_class"]["left"] for r in seeds])
    assert per_class.at["unet", "left"] == pytest.approx(expected_left)


def test_profile_variants_are_separate_series_and_leaderboard_costs_use_the_default(fabricated_records, tmp_path):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    source = next((records / "profiles").glob("profile_usema_s_64x64_*.json"))
    for path in (records / "profiles").glob("profile_usema_s_64x64_*.json"):
        record = json.loads(path.read_text())
        if record["cost"]["mode"] == "infer":
            source = path
    record = json.loads(source.read_text())
    record["metrics"] = {"variant": "sdpa-math"}
    record["environment"]["backends"] = {"sdpa": ["math"], "sdpa_requested": "math", "sema": ["torch"]}
    record["cost"]["macs"] *= 10
    (records / "profiles" / "math_variant.json").write_text(json.dumps(record))
    leaderboard = aggregate(load_records(records))
    infer_64 = leaderboard.costs[leaderboard.costs["mode"].eq("infer") & leaderboard.costs["pixels"].eq(RESOLUTION**2)]
    assert sorted(infer_64.loc[infer_64["model"].eq("usema_s"), "series"]) == ["usema_s", "usema_s [sdpa-math]"]
    kernels = infer_64.set_index("series")["kernels"]
    assert kernels["usema_s [sdpa-math]"] == "sdpa: math; sema: torch"  # what ran, not what was asked for
    assert kernels["usema_s"] == ""
    row = board_of(leaderboard, "toy").table.set_index("model").loc["usema_s"]
    assert row["macs"] == pytest.approx(MODEL_COSTS["usema_s"][1] * RESOLUTION**2)


def test_profiles_at_another_batch_draw_their_own_series(fabricated_records, tmp_path):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    source = next(path for path in (records / "profiles").glob("profile_usema_s_64x64_*.json")
                  if json.loads(path.read_text())["cost"]["mode"] == "infer")  # fmt: skip
    record = json.loads(source.read_text())
    record["cost"]["batch"] = 16
    (records / "profiles" / "batch16.json").write_text(json.dumps(record))
    costs = aggregate(load_records(records)).costs
    infer_64 = costs[costs["mode"].eq("infer") & costs["pixels"].eq(RESOLUTION**2) & costs["model"].eq("usema_s")]
    assert sorted(infer_64["series"]) == ["usema_s", "usema_s [batch 16]"]


def _rewrite(paths, change) -> None:
    """Apply `change` to the JSON record at each path, in place."""
    for path in paths:
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))


def _profile_like(source: dict, path: Path, **changes) -> None:
    """Write a copy of profile record `source` with `changes` (cost or environment fields) applied."""
    record = json.loads(json.dumps(source))
    for section, values in changes.items():
        record[section].update(values)
    path.write_text(json.dumps(record))


def test_leaderboard_costs_use_batch_1_at_the_runs_precision(fabricated_records, tmp_path):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    pixels, (_, macs_per_pixel, _, ms_per_pixel, _) = RESOLUTION**2, MODEL_COSTS["usema_s"]
    profiles = records / "profiles"
    for path in profiles.glob(f"profile_usema_s_{RESOLUTION}x{RESOLUTION}_*.json"):
        if json.loads(path.read_text())["cost"]["mode"] == "infer":
            infer = json.loads(path.read_text())
        path.unlink()  # usema_s now has only the profiles below at the training resolution
    _profile_like(infer, profiles / "batch16_bf16.json", cost={"batch": 16, "latency_ms": {"median": 16.0}})
    _profile_like(infer, profiles / "batch1_fp32.json", cost={"macs": 2 * macs_per_pixel * pixels}, environment={"precision": "fp32"})
    row = board_of(aggregate(load_records(records)), "toy").table.set_index("model").loc["usema_s"]
    assert row["macs"] == pytest.approx(2 * macs_per_pixel * pixels)  # the batch-1 profile, whatever its precision
    assert np.isnan(row["latency_ms"])  # the runs were bf16: an fp32 time is not theirs

    _rewrite(records.glob("toy/usema_s/seed*/*_usema_s_*.json"), lambda record: record["environment"].update(precision="fp32"))
    _profile_like(infer, profiles / "batch1_bf16.json", cost={"latency_ms": {"median": 99.0}})
    row = board_of(aggregate(load_records(records)), "toy").table.set_index("model").loc["usema_s"]
    assert row["latency_ms"] == pytest.approx(ms_per_pixel * pixels)  # fp32 runs: the fp32 profile, not the bf16 one


@pytest.mark.parametrize(("section", "field", "dataset", "protocol"), [
    ("protocol", "hash", "toy", "quick [protocol 012345]"),
    ("dataset", "split_hash", "toy [split 012345]", "quick"),
    ("dataset", "data_hash", "toy [data 012345]", "quick"),
])
def test_runs_of_another_protocol_split_or_data_get_their_own_board(fabricated_records, tmp_path, section, field, dataset, protocol):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    _rewrite(records.glob("toy/unet/seed*/*.json"), lambda record: record[section].update({field: "0123456789ab"}))
    leaderboard = aggregate(load_records(records))
    edited = next(board for board in leaderboard.groups if (board.dataset, board.protocol) == (dataset, protocol))
    ran = edited.table[edited.table["status"].ne("missing")]
    assert list(ran["model"]) == ["unet"] and ran["seeds_ok"].tolist() == [3]
    original = next(board for board in leaderboard.groups if board.dataset.startswith("toy") and board is not edited)
    table = original.table.set_index("model")
    assert table.at["unet", "status"] == "missing" and table.at["unet", "seeds_ok"] == 0
    assert table["paired_cases"].max() == 10 and np.isnan(table.at["unet", "p_value"])


def test_runs_with_another_model_config_get_their_own_row(fabricated_records, tmp_path):
    records = shutil.copytree(fabricated_records, tmp_path / "records")
    _rewrite(records.glob("toy/unet/seed2/*.json"), lambda record: record["model"].update(config_hash="0123456789ab"))
    leaderboard = aggregate(load_records(records))
    table = board_of(leaderboard, "toy").table.set_index("model")
    default = next(name for name in table.index if name.startswith("unet [config") and "012345" not in name)
    assert table.at["unet [config 012345]", "seeds_ok"] == 1 and table.at[default, "seeds_ok"] == 2
    assert np.isnan(table.at["unet [config 012345]", "macs"])  # profiles are of the registered config
    assert list(board_of(leaderboard, "other").table["model"]) == ["usema_s", "unet", "transunet", "umamba_bot"]
