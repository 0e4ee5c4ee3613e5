"""The aggregated numbers as CSV files (raw values, not display strings), for spreadsheets and scripts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from usemabench.core.io import atomic_write_text
from usemabench.leaderboard import display
from usemabench.leaderboard.aggregate import Leaderboard

FLOAT_FORMAT = "%.6g"
LEADERBOARD_COLUMNS = [
    "dataset", "protocol", "reference", "rank", "model", "is_reference", "status", "seeds_ok", "seeds_expected",
    "dice_mean", "dice_std_seeds", "dice_cases_mean", "dice_cases_std", "dice_ci_low", "dice_ci_high",
    "hd95_mean", "hd95_std_seeds", "hd95_cases_mean", "hd95_cases_std", "iou_mean", "nsd_mean", "cases",
    "paired_cases", "delta_dice", "delta_dice_ci_low", "delta_dice_ci_high", "p_value", "p_holm",
    "resolution", "params", "macs", "peak_train_memory_bytes", "peak_train_memory_source", "latency_ms",
    "cost_device", "note",
]
# Added after hd95_cases_std only when some row has it, so leaderboards of older records keep their bytes.
HD95_POOLED_COLUMNS = ["hd95_pooled_mean", "hd95_pooled_std_seeds"]
PER_CLASS_COLUMNS = ["dataset", "protocol", "model", "class", "dice"]
RUNS_COLUMNS = ["dataset", "protocol", "model", "seed", "status", "record", "note"]
COST_COLUMNS = [
    "device", "precision", "mode", "model", "variant", "height", "width", "batch", "status", "params", "macs", "flops",
    "peak_memory_bytes", "memory_method", "latency_ms", "latency_iqr_ms", "throughput", "kernels", "error", "record_path",
]


def _with_group(frame: pd.DataFrame, dataset: str, protocol: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "protocol", protocol)
    frame.insert(0, "dataset", dataset)
    return frame


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Frames stacked in the stated column order (a header even when there are no rows)."""
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def leaderboard_frames(leaderboard: Leaderboard) -> dict[str, pd.DataFrame]:
    """File name -> table: the leaderboards, per-class Dice (long), runs, costs and skipped files."""
    boards, classes, runs = [], [], []
    for board in leaderboard.groups:
        boards.append(_with_group(board.table, board.dataset, board.protocol).assign(reference=board.reference or ""))
        long = board.per_class.melt(id_vars="model", var_name="class", value_name="dice").dropna(subset=["dice"])
        classes.append(_with_group(long.sort_values(["model", "class"], kind="stable"), board.dataset, board.protocol))
        runs.append(_with_group(board.runs, board.dataset, board.protocol))
    costs = leaderboard.costs.copy()
    if costs.empty:
        costs = pd.DataFrame(columns=COST_COLUMNS)
    else:
        costs["height"] = costs["resolution"].map(lambda side: side[0])
        costs["width"] = costs["resolution"].map(lambda side: side[1])
        costs = costs[COST_COLUMNS]
    problems = pd.DataFrame([(problem.path, problem.reason) for problem in leaderboard.record_set.problems], columns=["file", "reason"])
    board_columns = LEADERBOARD_COLUMNS
    if any(display.has_hd95_pooled(board) for board in leaderboard.groups):
        after = board_columns.index("hd95_cases_std") + 1
        board_columns = [*board_columns[:after], *HD95_POOLED_COLUMNS, *board_columns[after:]]
    return {
        "leaderboard.csv": _concat(boards, board_columns),
        "per_class_dice.csv": _concat(classes, PER_CLASS_COLUMNS),
        "runs.csv": _concat(runs, RUNS_COLUMNS),
        "costs.csv": costs,
        "skipped.csv": problems,
    }


def write_csvs(leaderboard: Leaderboard, leaderboard_dir: Path) -> list[Path]:
    written = []
    for name, frame in leaderboard_frames(leaderboard).items():
        text = frame.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        written.append(atomic_write_text(leaderboard_dir / name, text))
    return written
