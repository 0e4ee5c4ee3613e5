"""The leaderboard's own outputs: aggregated records -> leaderboard/ (LEADERBOARD.md and the CSV tables).

The leaderboard produces tables; `usemabench.reports` draws them. The whole build (records -> tables, charts and
the HTML page) is `usemabench.reports.build.build`, which draws the charts first and hands this module their links.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from usemabench.core.io import atomic_write_text
from usemabench.leaderboard.aggregate import Leaderboard
from usemabench.leaderboard.csv_tables import write_csvs
from usemabench.leaderboard.markdown import FigureLink, leaderboard_markdown

DEFAULT_RECORDS_DIR = Path("leaderboard/records")
DEFAULT_LEADERBOARD_DIR = Path("leaderboard")
DEFAULT_REPORTS_DIR = Path("reports")
MARKDOWN_NAME = "LEADERBOARD.md"


@dataclass(frozen=True)
class LeaderboardFiles:
    csvs: list[Path]
    markdown: Path


def write_leaderboard(leaderboard: Leaderboard, leaderboard_dir: Path, figures: list[FigureLink], notes: list[str]) -> LeaderboardFiles:
    """Write the CSVs and LEADERBOARD.md; `figures` link the charts relative to `leaderboard_dir`."""
    leaderboard_dir.mkdir(parents=True, exist_ok=True)
    csvs = write_csvs(leaderboard, leaderboard_dir)
    markdown = atomic_write_text(leaderboard_dir / MARKDOWN_NAME, leaderboard_markdown(leaderboard, figures, notes))
    return LeaderboardFiles(csvs, markdown)
