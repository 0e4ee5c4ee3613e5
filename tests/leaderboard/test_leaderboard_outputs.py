"""LEADERBOARD.md and the CSV files built from fabricated records."""

import pandas as pd

from usemabench.leaderboard.display import Table
from usemabench.leaderboard.markdown import markdown_table


def test_markdown_has_every_board_costs_and_skipped_files(built_outputs):
    markdown = (built_outputs / "leaderboard" / "LEADERBOARD.md").read_text()
    for heading in ("## other · quick", "## toy · quick", "### NVIDIA H100 80GB HBM3 · bf16 · train", "## Skipped files"):
        assert heading in markdown
    assert "| – | transunet | attention-full | missing | 0/1 |" in markdown
    assert "| 1 | usema_s (ref) | usema | ok | 3/3 |" in markdown
    assert "<details><summary>How to read the tables</summary>" in markdown
    assert "| broken.json | not a readable JSON record" in markdown
    assert "no qualitative panel (no saved predictions)" in markdown
    assert "](../reports/figures/scaling_nvidia-h100-80gb-hbm3_bf16_infer.png)" in markdown
    assert "| transunet | 512×512 | 1 | oom |" in markdown
    assert "| bench/bench_" in markdown and "](../reports/figures/bench_bench_" not in markdown
    assert "figures/bench_bench-" in markdown


def test_csv_files_hold_raw_numbers_for_every_row(built_outputs):
    folder = built_outputs / "leaderboard"
    board = pd.read_csv(folder / "leaderboard.csv")
    assert len(board) == 8 and set(board["status"]) == {"ok", "partial", "missing"}
    assert board.loc[board["model"].eq("usema_s") & board["dataset"].eq("toy"), "rank"].item() == 1
    assert len(pd.read_csv(folder / "runs.csv")) == 4 * 3 + 4
    assert len(pd.read_csv(folder / "costs.csv")) == 4 * 2 * 4
    assert set(pd.read_csv(folder / "skipped.csv")["file"]) == {"broken.json", "future.json"}
    per_class = pd.read_csv(folder / "per_class_dice.csv")
    assert set(per_class["class"]) == {"left", "right"} and per_class["dice"].between(0, 1).all()


def test_markdown_cells_escape_pipes_and_newlines():
    table = Table(["a|b", "n"], [["x|y\nz", "1"]], [[None, None]], [False, True])
    assert markdown_table(table) == "| a\\|b | n |\n|---|---:|\n| x\\|y z | 1 |"


def test_number_formats():
    import numpy as np

    from usemabench.leaderboard import display

    assert display.count(np.int64(29_780_000)) == "29.8M" and display.count(512) == "512" and display.memory(100) == "100 B"
    assert display.memory(1.5 * 2**30) == "1.5 GiB" and display.memory(float("nan")) == "–"
    assert display.mean_std(0.81234, float("nan")) == "0.812" and display.mean_std(0.8, 0.01) == "0.800 ± 0.010"
    assert display.p_value(0.0004) == "<0.001" and display.p_value(0.0312) == "0.031"
    assert display.key(np.int64(3)) == 3.0 and display.key(True) is None


def test_headers_state_units_and_what_train_costs_count(built_outputs):
    markdown = (built_outputs / "leaderboard" / "LEADERBOARD.md").read_text()
    train = markdown.split("### NVIDIA H100 80GB HBM3 · bf16 · train")[1].split("###")[0]
    infer = markdown.split("### NVIDIA H100 80GB HBM3 · bf16 · infer")[1].split("###")[0]
    assert "| MACs (fwd+bwd) | FLOPs (fwd+bwd) |" in train and "| MACs | FLOPs |" in infer
    assert "| HD95 px (seeds) | HD95 px (cases) |" in markdown
