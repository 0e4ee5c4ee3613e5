"""The committed leaderboard/ and reports/ are what `usemabench leaderboard` makes of the committed records."""

from pathlib import Path

import pytest
from PIL import Image

from usemabench.reports.build import build
from usemabench.reports.figures import SOFTWARE_KEY

REPOSITORY = Path(__file__).resolve().parents[2]
RECORDS = REPOSITORY / "leaderboard" / "records"
FIX = "regenerate with `usemabench leaderboard` (from the repository root) and commit leaderboard/ and reports/"


def _png_tag(path: Path) -> str | None:
    with Image.open(path) as image:
        return image.text.get(SOFTWARE_KEY)


@pytest.mark.skipif(not RECORDS.is_dir(), reason="not a source checkout (no leaderboard/records)")
def test_committed_outputs_match_a_fresh_build(tmp_path):
    build(RECORDS, tmp_path / "leaderboard", tmp_path / "reports")
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
    figures = {path.name for path in (tmp_path / "reports" / "figures").glob("*.png")}
    leftover = sorted(path.name for path in (REPOSITORY / "reports" / "figures").glob("*.png") if path.name not in figures)
    assert not (stale or missing or leftover), f"out of date: {stale}, missing: {missing}, left over: {leftover}; {FIX}"
