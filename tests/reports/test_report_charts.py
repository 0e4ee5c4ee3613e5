"""Chart helpers: fitted scaling exponents, the Pareto front, the qualitative case choice, the layout check."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from matplotlib.backends.backend_agg import FigureCanvasAgg

from usemabench.leaderboard.aggregate import aggregate
from usemabench.leaderboard.fields import bench_fields
from usemabench.core.records import make_record
from usemabench.leaderboard.store import load_records
from usemabench.reports import pareto, qualitative
from usemabench.reports.benchmarks import bench_tables, unavailable_note
from usemabench.reports.build import layout_notes, write_figures
from usemabench.reports.figures import ReportFigure, label_log_axis, layout_problems, new_figure, report_style, slug
from usemabench.reports.pareto import pareto_front
from usemabench.reports.qualitative import absent_text, choose_cases, class_names, find_sources, pick_folder
from usemabench.reports.scaling import draw_cost_panel, fit_height, fit_label, model_colors, scaling_exponent, split_points


def test_scaling_exponent_recovers_power_laws():
    pixels = np.array([64, 128, 256, 512], dtype=float) ** 2
    assert scaling_exponent(pixels, 3.0 * pixels) == pytest.approx(1.0)
    assert scaling_exponent(pixels, 0.5 * pixels**2) == pytest.approx(2.0)
    # non-positive and missing values are left out of the fit, and under three sizes there is no exponent
    assert scaling_exponent(pixels, np.array([np.nan, 128.0**2, 256.0**2, 512.0**2])) == pytest.approx(1.0)
    assert math.isnan(scaling_exponent(pixels, np.array([np.nan, 0.0, 256.0**2, 512.0**2])))
    assert math.isnan(scaling_exponent(pixels[:1], pixels[:1]))


def test_runs_that_were_not_ok_are_marked_never_fitted():
    # An out-of-memory run whose MACs were counted (1e9, far off the line) must not bend the fit.
    line = split_points("m", [1, 2, 4, 8, 16], [1.0, 2.0, 4.0, 1e9, np.nan], ["ok", "ok", "ok", "oom", "unsupported"])
    assert line.sizes.tolist() == [1, 2, 4] and fit_label(line) == "m (α=1.00, n=3)"
    assert [(point.size, point.status, point.counted) for point in line.not_ok] == [(8, "oom", True), (16, "unsupported", False)]
    # an ok run without a value (a quantity it did not measure) is neither a point nor a marker
    assert split_points("m", [1, 2], [1.0, np.nan], ["ok", "ok"]).sizes.tolist() == [1]
    assert fit_label(split_points("two", [1, 2], [1.0, 2.0], ["ok", "ok"])) == "two (n=2)"


def _drawn_panel():
    figure = new_figure(6, 4, left=0.12)
    axis = figure.subplots()
    lines = [
        split_points("a", [1, 2, 4, 8], [1.0, 2.0, 4.0, 8.0], ["ok", "ok", "ok", "oom"]),
        split_points("b", [1, 2, 4, 8], [2.0, 4.0, np.nan, np.nan], ["ok", "ok", "failed", "oom"]),
        split_points("c", [1, 2, 4, 8], [np.nan, 3.0, 6.0, np.nan], ["unsupported", "ok", "ok", "skipped"]),
    ]
    space = draw_cost_panel(axis, lines, model_colors(["a", "b", "c"]), "cost", "ms", "size")
    fit_height(figure, [space])
    return figure, axis, space


def test_cost_panel_marks_each_kind_of_run_that_did_not_finish():
    figure, axis, space = _drawn_panel()
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert labels == ["a (α=1.00, n=3)", "b (n=2)", "c (n=2)", "counted, not run (not fitted)", "not run: out of memory",
                      "not run: unsupported", "not run: failed", "not run: skipped"]
    assert space.strip_rows == 2  # b and c did not run at size 8: two stacked markers (a was counted)
    assert axis.get_yscale() == "log" and axis.get_ylabel() == "ms (log)"
    hollow = [line for line in axis.get_lines() if line.get_markerfacecolor() == "none"]
    assert [tuple(line.get_xydata()[0]) for line in hollow] == [(8.0, 8.0)]


def test_not_run_markers_sit_above_the_data_area_and_the_legend_below_it():
    figure, axis, _ = _drawn_panel()
    renderer = FigureCanvasAgg(figure).get_renderer()
    top, bottom = axis.get_window_extent(renderer).y1, axis.get_window_extent(renderer).y0
    strip = [line for line in axis.get_lines() if not line.get_label().startswith(("a ", "b ", "c "))
             and line.get_markerfacecolor() != "none"]
    assert len(strip) == 4 and all(line.get_transform().transform(line.get_xydata())[0, 1] > top for line in strip)
    assert axis.get_legend().get_window_extent(renderer).y1 < bottom
    assert axis.title.get_window_extent(renderer).y0 > max(line.get_transform().transform(line.get_xydata())[0, 1] for line in strip)


def test_unavailable_contenders_are_stated():
    assert unavailable_note({"cuda": "mamba_ssm is not installed"}) == "not run on this machine: cuda (mamba_ssm is not installed)"
    assert unavailable_note({}) == "" and unavailable_note(None) == ""
    record = make_record("bench", metrics={"results": {}, "unavailable": {"cuda": "mamba_ssm is not installed"}}, cost={})
    assert unavailable_note(bench_fields(record)["unavailable"]) == "not run on this machine: cuda (mamba_ssm is not installed)"


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


def test_pareto_panels_name_the_models_they_lack(fabricated_records, tmp_path, monkeypatch):
    toy = next(board for board in aggregate(load_records(fabricated_records)).groups if board.dataset == "toy")
    toy.table.loc[toy.table["model"].eq("unet"), "latency_ms"] = np.nan
    drawn = []
    monkeypatch.setattr(pareto, "write_figure", lambda figure, *_: drawn.append(figure))
    pareto.pareto_figure(toy, tmp_path / "pareto.png", model_colors(list(toy.table["model"])))
    macs_axis, latency_axis = drawn[0].axes
    assert "no latency on the training device: unet" in [text.get_text() for text in latency_axis.texts]
    assert not any(text.get_text().startswith("no MACs") for text in macs_axis.texts)


def test_missing_image_folders_are_named(tmp_path):
    present = tmp_path / "run.images"
    present.mkdir()
    absent = tmp_path / "eval_model_dataset_seed0.labels"
    assert absent_text(None) == "not saved" and absent_text(present) == "not saved"
    assert absent_text(absent) == "missing:\neval_model_dataset_seed0.l\nabels"
    assert pick_folder([None, absent, present]) == present and pick_folder([None, absent]) == absent
    assert pick_folder([None]) is None


def test_the_layout_check_names_what_is_cut_off_or_overprinted():
    with report_style():
        figure = new_figure(4, 3, left=0.15)
        axis = figure.subplots()
        axis.plot([1, 2], [1, 2], label="a legend label long enough to run out of the canvas on the right")
        axis.legend(loc="upper left", bbox_to_anchor=(0.9, 1.0))
        axis.text(0.5, 0.5, "first", transform=axis.transAxes)
        axis.text(0.52, 0.5, "second", transform=axis.transAxes)
        assert layout_problems(figure) == ["panel 1 legend is cut off at the figure's edge",
                                           "panel 1 text 'first' overlaps panel 1 text 'second'"]
        assert layout_notes([ReportFigure(Path("f.png"), "f", (), ("x overlaps y",))]) == ["layout of f.png: x overlaps y"]


@pytest.mark.parametrize("low, high", [(2.5e9, 8e9), (14.8e9, 38.3e9), (2e10, 1e14), (0.3, 0.9)])
def test_log_tick_labels_are_many_but_never_touch(low, high):
    # A narrow log axis under a decade used to label every minor tick, so 8G and 9G printed over each other.
    with report_style():
        figure = new_figure(2.2, 3, left=0.3)
        axis = figure.subplots()
        axis.plot([low, high], [low, high], "o")
        axis.set_xscale("log")
        axis.set_yscale("log")
        label_log_axis(axis.xaxis)
        label_log_axis(axis.yaxis)
        axis.margins(x=0.15)
        assert layout_problems(figure) == []
        assert len([label for label in axis.xaxis.get_ticklabels(which="both") if label.get_text()]) >= 3


def test_stacked_not_run_markers_keep_apart_and_below_the_title():
    figure, _, _ = _drawn_panel()  # b and c both did not run at size 8: two markers stacked above the panel
    assert layout_problems(figure) == []


def test_every_chart_of_the_fabricated_report_is_laid_out_cleanly(fabricated_records, tmp_path):
    figures, notes = write_figures(aggregate(load_records(fabricated_records)), tmp_path)
    assert len(figures) == 6 and [problem for figure in figures for problem in figure.layout_problems] == []
    assert not [note for note in notes if note.startswith("layout of")]


def test_the_qualitative_panel_has_a_colour_key_naming_the_classes(fabricated_records, tmp_path, monkeypatch):
    toy = next(board for board in aggregate(load_records(fabricated_records)).groups if board.dataset == "toy")
    drawn = []
    monkeypatch.setattr(qualitative, "write_figure", lambda figure, *_: drawn.append(figure))
    qualitative.qualitative_figure(toy, fabricated_records, tmp_path / "cases.png")
    (key,) = drawn[0].legends
    assert [text.get_text() for text in key.get_texts()] == ["class 1", "class 2"]  # 'toy' is no registered dataset
    assert class_names("synthetic", [1, 2]) == ["1 nucleus", "2 vessel"]
    palette = qualitative.class_palette(2)
    assert [tuple(patch.get_facecolor()[:3]) for patch in key.get_patches()] == [palette(1)[:3], palette(2)[:3]]


COMMITTED_BOARDS = sorted((Path(__file__).resolve().parents[2] / "leaderboard").rglob("LEADERBOARD.md"))


@pytest.mark.parametrize("committed", COMMITTED_BOARDS, ids=lambda path: path.parent.name)
def test_the_committed_report_notes_no_layout_problem(committed):
    """With the byte-for-byte regeneration test, this says the committed charts draw nothing cut off or overprinted."""
    assert "layout of " not in committed.read_text(encoding="utf-8")


def test_pareto_names_of_close_models_do_not_overprint(tmp_path):
    # Two models a hair apart in cost and Dice: both names used to go 4 pt right and above their points.
    table = pd.DataFrame({"model": ["usema_t", "usema_t_none", "unet_s", "umamba_bot_s"], "dice_mean": [0.61, 0.6095, 0.612, 0.59],
                          "dice_std_seeds": [0.01, 0.02, 0.01, 0.03], "macs": [1.1e9, 1.08e9, 1.3e9, 1.6e9],
                          "latency_ms": [20.0, 19.5, 12.0, 40.0], "is_reference": [True, False, False, False]})
    board = SimpleNamespace(dataset="kvasir_seg", protocol="cpu", table=table)
    figure = pareto.pareto_figure(board, tmp_path / "pareto.png", model_colors(list(table["model"])))
    assert figure.layout_problems == ()
