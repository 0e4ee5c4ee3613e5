"""Chart helpers: fitted scaling exponents, the Pareto front, the qualitative case choice."""

import math

import numpy as np
import pandas as pd
import pytest

from usemabench.leaderboard.aggregate import aggregate
from usemabench.leaderboard.store import load_records
from usemabench.reports.benchmarks import bench_tables
from usemabench.reports.figures import slug
from usemabench.reports.pareto import pareto_front
from usemabench.reports.qualitative import choose_cases, find_sources
from usemabench.reports.scaling import scaling_exponent


def test_scaling_exponent_recovers_power_laws():
    pixels = np.array([64, 128, 256, 512], dtype=float) ** 2
    assert scaling_exponent(pixels, 3.0 * pixels) == pytest.approx(1.0)
    assert scaling_exponent(pixels, 0.5 * pixels**2) == pytest.approx(2.0)
    # non-positive and missing values are left out of the fit
    assert scaling_exponent(pixels, np.array([np.nan, 0.0, 256.0**2, 512.0**2])) == pytest.approx(1.0)
    assert math.isnan(scaling_exponent(pixels[:1], pixels[:1]))


def test_pareto_front_keeps_only_undominated_models():
    costs = np.array([1.0, 2.0, 3.0, 2.5, 1.0])
    scores = np.array([0.70, 0.80, 0.75, 0.85, 0.60])
    # index 4 is dominated by 0 (same cost, lower score), 2 by 3 (cheaper, higher score)
    assert pareto_front(costs, scores).tolist() == [0, 1, 3]


def test_slug_is_file_name_safe():
    assert slug("scaling", "NVIDIA H100 80GB HBM3", "bf16", "infer") == "scaling_nvidia-h100-80gb-hbm3_bf16_infer"
    assert slug("cases", "a/b", "") == "cases_a-b_none"


def test_qualitative_sources_and_cases(fabricated_records):
    leaderboard = aggregate(load_records(fabricated_records))
    toy = next(board for board in leaderboard.groups if board.dataset == "toy")
    sources = find_sources(toy, fabricated_records)
    assert [source.model for source in sources] == ["usema_s", "unet", "umamba_bot", "transunet"]
    assert all(source.images is not None and source.labels is not None for source in sources)
    available = sorted(path.stem for path in sources[0].predictions.glob("*.png"))
    scores = toy.case_scores[toy.case_scores["model"].eq("usema_s") & toy.case_scores["case_id"].isin(available)]
    ordered = list(scores.sort_values(["dice", "case_id"])["case_id"])
    cases, how = choose_cases(toy, available, "usema_s")
    assert cases == [ordered[0], ordered[len(ordered) // 2], ordered[-1]] and how == f"worst, median and best of the {len(ordered)} saved cases of usema_s by Dice"
    other = next(board for board in leaderboard.groups if board.dataset == "other")
    assert find_sources(other, fabricated_records) == []


def test_cases_fall_back_to_names_without_scores(fabricated_records):
    toy = next(board for board in aggregate(load_records(fabricated_records)).groups if board.dataset == "toy")
    toy.case_scores = pd.DataFrame(columns=["model", "case_id", "dice", "hd95"])
    assert choose_cases(toy, ["c", "a", "b", "d"], "usema_s") == (["a", "b", "c"], "first saved cases by name")


def test_bench_results_are_read_in_both_layouts_and_unknown_ones_skipped():
    flat = {"torch": [{"length": 4096, "status": "ok", "time_ms": {"median": 4.4}, "peak_memory_mb": 512.0}],
            "cuda": [{"length": 4096, "status": "oom"}]}
    tables = bench_tables(flat)
    assert list(tables) == [""] and tables[""][0] == "length" and sorted(tables[""][1]) == ["cuda", "torch"]
    assert tables[""][1]["torch"]["time_ms"].tolist() == [4.4] and math.isnan(tables[""][1]["cuda"]["time_ms"].item())
    nested = {"op": {"sema": [{"grid": [64, 64], "time_ms": {"median": 1.0}}]}, "notes": "text"}
    assert bench_tables(nested)["op"][1]["sema"]["size"].tolist() == [4096.0]
    assert bench_tables({"images_per_s": 12.0, "runs": [{"workers": 2}]}) == {}
