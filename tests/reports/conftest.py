"""Fixtures for the report tests, shared with tests/leaderboard (the record factory lives there)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "leaderboard"))

from record_factory import built_outputs, fabricated_records  # noqa: E402, F401  (pytest fixtures)
