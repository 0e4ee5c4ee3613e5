"""Records folder -> leaderboard/ (LEADERBOARD.md, CSVs) and reports/ (figures, index.html), in one pass.

A pure function of the records: the same records (and matplotlib version) give byte-identical files.
Figures an earlier build wrote (listed in `reports/figures/usemabench-figures.txt`) that this build did not
are left over from older records and are removed, so the folder matches the page; any other file in the
folder is never touched, so --reports-dir may point at a folder that holds other files. The build is all or
nothing: written beside the output folders, then swapped in (`core.staging`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from usemabench.core.io import atomic_write_text
from usemabench.core.staging import Staging, staged_outputs
from usemabench.leaderboard.aggregate import DEFAULT_REFERENCE, Leaderboard, aggregate
from usemabench.leaderboard.build import (
    DEFAULT_LEADERBOARD_DIR,
    DEFAULT_RECORDS_DIR,
    DEFAULT_REPORTS_DIR,
    write_leaderboard,
)
from usemabench.leaderboard.markdown import FigureLink
from usemabench.leaderboard.store import Problem, load_records
from usemabench.reports.benchmarks import bench_figures
from usemabench.reports.figures import ReportFigure
from usemabench.reports.html import report_html
from usemabench.reports.pareto import pareto_figures
from usemabench.reports.qualitative import qualitative_figures
from usemabench.reports.scaling import model_colors, scaling_figures

FIGURES_FOLDER = "figures"
FIGURES_MANIFEST = "usemabench-figures.txt"  # in the figures folder: the names of the figures a build wrote


@dataclass
class BuildResult:
    leaderboard: Leaderboard
    written: list[Path]
    problems: list[Problem]
    notes: list[str]


def _relative_link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def links(figures: list[ReportFigure], page_dir: Path, staging: Staging) -> list[FigureLink]:
    """The staged figures as a page in the real folder `page_dir` will link them."""
    return [FigureLink(figure.title, _relative_link(staging.real(figure.path), page_dir), figure.section) for figure in figures]


def write_figures(leaderboard: Leaderboard, figures_dir: Path) -> tuple[list[ReportFigure], list[str]]:
    """Every chart, with one colour per model across all of them; notes say what could not be drawn."""
    models = set(leaderboard.costs.get("series", [])) | {name for board in leaderboard.groups for name in board.table["model"]}
    colors = model_colors(sorted(models))
    figures = scaling_figures(leaderboard.costs, figures_dir, colors)
    figures += pareto_figures(leaderboard.groups, figures_dir, colors)
    panels, notes = qualitative_figures(leaderboard.groups, leaderboard.record_set.root, figures_dir)
    figures += panels + bench_figures(leaderboard.record_set.benches, figures_dir)
    return figures, notes + layout_notes(figures)


def layout_notes(figures: list[ReportFigure]) -> list[str]:
    """A note per label, legend or marker a figure draws cut off or on top of another, so the page says so."""
    return [f"layout of {figure.path.name}: {problem}" for figure in figures for problem in figure.layout_problems]


def _replace_figures_manifest(figures_dir: Path, staged_dir: Path, keep: list[ReportFigure], staging: Staging) -> Path:
    """Remove the figures the previous build listed and this one did not write; list this build's figures."""
    manifest = figures_dir / FIGURES_MANIFEST
    kept = sorted({figure.path.name for figure in keep})
    listed = manifest.read_text(encoding="utf-8").splitlines() if manifest.is_file() else []
    for name in sorted(set(listed) - set(kept)):
        staging.remove(figures_dir / Path(name).name)  # .name: never outside the folder
    return atomic_write_text(staged_dir / FIGURES_MANIFEST, "".join(f"{name}\n" for name in kept))


def build(
    records_dir: str | os.PathLike = DEFAULT_RECORDS_DIR,
    leaderboard_dir: str | os.PathLike = DEFAULT_LEADERBOARD_DIR,
    reports_dir: str | os.PathLike = DEFAULT_REPORTS_DIR,
    reference: str = DEFAULT_REFERENCE,
    *,
    strict: bool = False,
) -> BuildResult:
    """Regenerate every table, chart and page from the records under `records_dir`, all or nothing.

    Everything is written beside the output folders first and swapped in at the end (`core.staging`), so a
    failure leaves the old outputs whole; with `strict`, a records folder with skipped files writes nothing.
    """
    leaderboard_dir, reports_dir = Path(leaderboard_dir), Path(reports_dir)
    leaderboard = aggregate(load_records(records_dir), reference=reference)
    if strict and leaderboard.record_set.problems:
        return BuildResult(leaderboard, [], leaderboard.record_set.problems, [])
    with staged_outputs(leaderboard_dir, reports_dir) as staging:
        board_dir, pages_dir = staging.folder(leaderboard_dir), staging.folder(reports_dir)
        figures_dir = pages_dir / FIGURES_FOLDER
        figures_dir.mkdir(parents=True, exist_ok=True)
        figures, notes = write_figures(leaderboard, figures_dir)
        manifest = _replace_figures_manifest(reports_dir / FIGURES_FOLDER, figures_dir, figures, staging)
        tables = write_leaderboard(leaderboard, board_dir, links(figures, leaderboard_dir, staging), notes)
        csv_links = [(path.name, _relative_link(staging.real(path), reports_dir)) for path in tables.csvs]
        page = report_html(leaderboard, links(figures, reports_dir, staging), csv_links, notes)
        staged = [figure.path for figure in figures] + [manifest] + tables.csvs + [tables.markdown]
        staged.append(atomic_write_text(pages_dir / "index.html", page))
        written = [staging.real(path) for path in staged]
    return BuildResult(leaderboard, written, leaderboard.record_set.problems, notes)
