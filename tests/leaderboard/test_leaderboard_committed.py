"""The committed leaderboard/ and reports/ are what `usemabench leaderboard` makes of the committed records."""

from pathlib import Path

import pytest
from PIL import Image

from usemabench.reports.build import build
from usemabench.reports.figures import SOFTWARE_KEY

REPOSITORY = Path(__file__).resolve().parents[2]
RECORDS = REPOSITORY / "leaderboard" / "records"
CPU_REFERENCE = REPOSITORY / "usemabench" / "reference" / "records"
# (records, leaderboard folder, reports folder, reference model, the command that regenerates them)
BOARDS = {
    "main": (RECORDS, "leaderboard", "reports", "usema_s", "usemabench leaderboard"),
    "cpu-reference": (
        CPU_REFERENCE, "leaderboard/cpu-reference", "reports/cpu-reference", "usema_tiny",
        "usemabench leaderboard --records-dir usemabench/reference/records --leaderboard-dir leaderboard/cpu-reference "
        "--reports-dir reports/cpu-reference --reference usema_tiny",
    ),
}


def _png_tag(path: Path) -> str | None:
    with Image.open(path) as image:
        return image.text.get(SOFTWARE_KEY)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_committed_outputs_match_a_fresh_build(tmp_path, board):
    records, leaderboard_dir, reports_dir, reference, command = BOARDS[board]
    if not records.is_dir():
        pytest.skip(f"not a source checkout (no {records})")
    build(records, tmp_path / leaderboard_dir, tmp_path / reports_dir, reference)
    generated = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    stale, missing = [], []
    for relative in generated:
        committed, fresh = REPOSITORY / relative, tmp_path / relative
        if not committed.is_file():
            missing.append(str(relative))
        elif relative.suffix == ".png" and _png_tag(committed) != _png_tag(fresh):
            # Drawn by another matplotlib version: pixels may differ by antialiasing; the size may not.
            with Image.open(committed) as old, Image.open(fresh) as new:
                if old.size != new.size:
                    stale.append(str(relative))
        elif committed.read_bytes() != fresh.read_bytes():
            stale.append(str(relative))
    figures = {path.name for path in (tmp_path / reports_dir / "figures").glob("*.png")}
    leftover = sorted(path.name for path in (REPOSITORY / reports_dir / "figures").glob("*.png") if path.name not in figures)
    fix = f"regenerate with `{command}` (from the repository root) and commit {leaderboard_dir}/ and {reports_dir}/"
    assert not (stale or missing or leftover), f"out of date: {stale}, missing: {missing}, left over: {leftover}; {fix}"
