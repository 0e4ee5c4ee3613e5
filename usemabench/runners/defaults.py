"""Default folders of the runners, in one light module so the CLI can show them without importing torch."""

from pathlib import Path

RUNS_DIR = Path("runs")  # checkpoints and epoch logs (not committed)
RECORDS_DIR = Path("leaderboard") / "records"  # records (committed)
LEADERBOARD_DIR = Path("leaderboard")
REPORTS_DIR = Path("reports")
