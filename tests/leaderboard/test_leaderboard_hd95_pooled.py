"""The pooled-HD95 column: shown (tables, CSV, conventions) when records carry it, absent when none does."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from usemabench.leaderboard import display
from usemabench.leaderboard.aggregate import aggregate
from usemabench.leaderboard.compare import compare_page, page_markdown
from usemabench.leaderboard.csv_tables import LEADERBOARD_COLUMNS, leaderboard_frames
from usemabench.core.records import make_record, model_entry, write_record
from usemabench.leaderboard.store import load_records

POOLED_HEADER = "HD95 pooled (medpy) px (seeds)"


def _eval(root: Path, model: str, seed: int, hd95: float, pooled: float | None) -> None:
    metrics = {"dice": {"mean": 0.8 - 0.01 * seed}, "iou": {"mean": 0.7}, "hd95": {"mean": hd95}, "nsd": {"mean": 0.9}}
    if pooled is not None:
        metrics["hd95_pooled"] = {"mean": pooled}
    record = make_record(
        "eval", seed=seed, resolution=[32, 32], metrics=metrics,
        environment={"device": "cpu", "precision": "fp32"},
        model=model_entry(model, {"num_classes": 2}),
        dataset={"name": "toy", "source": "folder", "split": "test", "split_hash": "abc"},
        protocol={"name": "quick", "hash": "def"},
    )
    write_record(record, root / model / f"seed{seed}")


def _board(root: Path):
    leaderboard = aggregate(load_records(root), reference="unet")
    (board,) = leaderboard.groups
    return leaderboard, board


def test_records_without_it_render_without_the_column(tmp_path):
    _eval(tmp_path, "unet", 0, 5.0, None)
    leaderboard, board = _board(tmp_path)
    assert POOLED_HEADER not in display.leaderboard_table(board).columns
    assert display.conventions(leaderboard.groups) == display.CONVENTIONS
    assert list(leaderboard_frames(leaderboard)["leaderboard.csv"].columns) == LEADERBOARD_COLUMNS


def test_records_with_it_get_the_column_the_csv_fields_and_the_convention(tmp_path):
    for seed, (hd95, pooled) in enumerate([(5.0, 4.0), (7.0, 6.0)]):
        _eval(tmp_path, "unet", seed, hd95, pooled)
    _eval(tmp_path, "usema_s", 0, 3.0, None)  # an older record: its cell is empty, never 0
    leaderboard, board = _board(tmp_path)
    table = display.leaderboard_table(board)
    column = table.columns.index(POOLED_HEADER)
    assert table.columns[column - 1] == "HD95 px (cases)"
    cells = {row[1].removesuffix(" (ref)"): row[column] for row in table.rows}
    assert cells == {"unet": "5.00 ± 1.41", "usema_s": display.MISSING}
    assert display.HD95_POOLED_CONVENTION in display.conventions(leaderboard.groups)
    csv = leaderboard_frames(leaderboard)["leaderboard.csv"].set_index("model")
    columns = list(csv.reset_index().columns)
    assert columns[columns.index("hd95_cases_std") + 1:][:2] == ["hd95_pooled_mean", "hd95_pooled_std_seeds"]
    assert csv.at["unet", "hd95_pooled_mean"] == pytest.approx(5.0)
    assert csv.at["unet", "hd95_pooled_std_seeds"] == pytest.approx(math.sqrt(2))
    assert pd.isna(csv.at["usema_s", "hd95_pooled_mean"])


def test_a_model_whose_seeds_do_not_all_carry_it_gets_no_pooled_mean(tmp_path):
    _eval(tmp_path, "unet", 0, 5.0, 4.0)
    _eval(tmp_path, "unet", 1, 7.0, None)
    _eval(tmp_path, "usema_s", 0, 3.0, 2.5)
    _, board = _board(tmp_path)
    rows = board.table.set_index("model")
    assert math.isnan(rows.at["unet", "hd95_pooled_mean"])
    assert rows.at["usema_s", "hd95_pooled_mean"] == pytest.approx(2.5)


def test_compare_shows_the_pooled_row_when_the_board_has_it(tmp_path):
    _eval(tmp_path, "unet", 0, 5.0, 4.0)
    _eval(tmp_path, "usema_s", 0, 3.0, 2.5)
    leaderboard, _ = _board(tmp_path)
    page = page_markdown(compare_page(leaderboard, "usema_s", ["unet"], "quick", []))
    assert f"| {POOLED_HEADER} | 2.50 | 4.00 |" in page
    assert display.HD95_POOLED_CONVENTION in page
