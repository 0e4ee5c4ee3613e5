"""Default folders of the runners, in one light module so the CLI can show them without importing torch."""

from pathlib import Path

RUNS_DIR = Path("runs")  # checkpoints and epoch logs (not committed)
RECORDS_DIR = Path("leaderboard") / "records"  # records (committed)
PROFILE_RECORDS_DIR = RECORDS_DIR / "profile"  # `usemabench profile`

# The main job (`usemabench run` with no arguments) works in a folder of its own, so that running it never
# changes the committed leaderboard, and a fresh checkout always trains instead of finding records.
MAIN_JOB_DIR = RUNS_DIR / "main-job"
