"""Records folder -> leaderboard/ (LEADERBOARD.md, CSVs) and reports/ (figures, index.html), in one pass.

A pure function of the records: the same records (and matplotlib version) give byte-identical files.
Figures in `reports/figures/` that this build did not write are left over from older records and are
removed, so the folder always matches the page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from usemabench.io import atomic_write_text
from usemabench.leaderboard.aggregate import DEFAULT_REFERENCE, Leaderboard, aggregate
from usemabench.leaderboard.csv_tables import write_csvs
from usemabench.leaderboard.markdown import leaderboard_markdown
from usemabench.leaderboard.store import Problem, load_records
from usemabench.reports.benchmarks import bench_figures
from usemabench.reports.figures import ReportFigure
from usemabench.reports.html import report_html
from usemabench.reports.pareto import pareto_figures
from usemabench.reports.qualitative import qualitative_figures
from usemabench.reports.scaling import model_colors, scaling_figures

DEFAULT_RECORDS_DIR = Path("leaderboard/records")
DEFAULT_LEADERBOARD_DIR = Path("leaderboard")
DEFAULT_REPORTS_DIR = Path("reports")
FIGURES_FOLDER = "figures"


@dataclass
class BuildResult:
    leaderboard: Leaderboard
    written: list[Path]
    problems: list[Problem]
    notes: list[str]


def _relative_link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def write_figures(leaderboard: Leaderboard, figures_dir: Path) -> tuple[list[ReportFigure], list[str]]:
    """Every chart, with one colour per model across all of them; notes say what could not be drawn."""
    models = set(leaderboard.costs.get("series", [])) | {name for board in leaderboard.groups for name in board.table["model"]}
    colors = model_colors(sorted(models))
    figures = scaling_figures(leaderboard.costs, figures_dir, colors)
    figures += pareto_figures(leaderboard.groups, figures_dir, colors)
    panels, notes = qualitative_figures(leaderboard.groups, leaderboard.record_set.root, figures_dir)
    return figures + panels + bench_figures(leaderboard.record_set.benches, figures_dir), notes


def _remove_stale_figures(figures_dir: Path, keep: list[ReportFigure]) -> None:
    kept = {figure.path.resolve() for figure in keep}
    for path in sorted(figures_dir.glob("*.png")):
        if path.resolve() not in kept:
            path.unlink()


def build(
    records_dir: str | os.PathLike = DEFAULT_RECORDS_DIR,
    leaderboard_dir: str | os.PathLike = DEFAULT_LEADERBOARD_DIR,
    reports_dir: str | os.PathLike = DEFAULT_REPORTS_DIR,
    reference: str = DEFAULT_REFERENCE,
) -> BuildResult:
    """Regenerate every table, chart and page from the records under `records_dir`."""
    leaderboard_dir, reports_dir = Path(leaderboard_dir), Path(reports_dir)
    leaderboard = aggregate(load_records(records_dir), reference=reference)
    figures_dir = reports_dir / FIGURES_FOLDER
    figures_dir.mkdir(parents=True, exist_ok=True)
    leaderboard_dir.mkdir(parents=True, exist_ok=True)
    figures, notes = write_figures(leaderboard, figures_dir)
    _remove_stale_figures(figures_dir, figures)
    csvs = write_csvs(leaderboard, leaderboard_dir)
    markdown = leaderboard_markdown(leaderboard, figures, lambda figure: _relative_link(figure.path, leaderboard_dir), notes)
    written = [figure.path for figure in figures] + csvs
    written.append(atomic_write_text(leaderboard_dir / "LEADERBOARD.md", markdown))
    page = report_html(
        leaderboard,
        figures,
        lambda figure: _relative_link(figure.path, reports_dir),
        [(path.name, _relative_link(path, reports_dir)) for path in csvs],
        notes,
    )
    written.append(atomic_write_text(reports_dir / "index.html", page))
    return BuildResult(leaderboard, written, leaderboard.record_set.problems, notes)
