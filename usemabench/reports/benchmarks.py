"""Benchmark records (benchmarks/*.py): time and peak memory of each contender against problem size.

Bench records are free-form. This module reads their common layout, `metrics["results"]` as
{contender: [point, ...]} or {table: {contender: [point, ...]}}, a point being {"tokens" | "length" |
"grid": size, "time_ms": {"median": ...}, "peak_memory_mb": ..., "status": ...}. A record in another
layout is still listed in the report, without a chart. Points that are not ok are marked, not fitted (see
`scaling`); when the bench row carries an `unavailable` column ({name: reason}, metrics.unavailable), those
contenders, which have no points, are stated under the chart.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from usemabench.leaderboard.fields import BENCH_MEMORY_KEY, BENCH_SIZE_KEYS, BENCH_TIME_PATH, lookup
from usemabench.reports.figures import ReportFigure, new_figure, report_style, slug, write_figure
from usemabench.reports.scaling import MIN_FIT_SIZES, draw_cost_panel, fit_height, model_colors, split_points

PANELS = (("time_ms", "time", "ms"), ("memory_mb", "peak memory", "MiB"))  # (column, panel title, unit)
Points = pd.DataFrame  # columns: size, time_ms, memory_mb, status


def _number(value: object) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else float("nan")


def _size(point: dict) -> tuple[str, float] | None:
    for key in BENCH_SIZE_KEYS:
        if isinstance(point.get(key), (int, float)) and not isinstance(point.get(key), bool):
            return key, float(point[key])
    grid = point.get("grid")
    if isinstance(grid, list) and grid and all(isinstance(side, int) for side in grid):
        return "tokens", float(math.prod(grid))
    return None


def _points(value: object) -> tuple[str, Points] | None:
    """(size name, points) when `value` is a list of measurement points, else None."""
    if not isinstance(value, list) or not value or not all(isinstance(point, dict) for point in value):
        return None
    rows, size_names = [], set()
    for point in value:
        size = _size(point)
        if size is None:
            return None
        size_names.add(size[0])
        rows.append({
            "size": size[1],
            "time_ms": _number(lookup(point, (BENCH_TIME_PATH,))),
            "memory_mb": _number(point.get(BENCH_MEMORY_KEY)),
            "status": str(point.get("status", "ok")),
        })
    return "/".join(sorted(size_names)), pd.DataFrame(rows).sort_values("size", kind="stable")


def bench_tables(results: dict) -> dict[str, tuple[str, dict[str, Points]]]:
    """{table name ("" for the flat layout): (size name, {contender: points})}, in sorted order."""
    candidates = [("", results), *[(table, value) for table, value in sorted(results.items()) if isinstance(value, dict)]]
    tables = {}
    for table, contenders in candidates:
        parsed = {name: found for name, value in sorted(contenders.items()) if (found := _points(value))}
        if parsed:
            size_name = "/".join(sorted({size for size, _ in parsed.values()}))
            tables[table] = (size_name, {name: points for name, (_, points) in parsed.items()})
    return tables


def bench_title(row: pd.Series) -> str:
    name = row["variant"] if isinstance(row["variant"], str) and row["variant"] else Path(row["record_path"]).stem
    return " · ".join(str(part) for part in (name, row["device"], row["precision"], row["mode"]) if isinstance(part, str) and part)


def unavailable_note(unavailable: object) -> str:
    """The contenders a record could not run at all ({name: reason} in metrics.unavailable), which have no line."""
    if not isinstance(unavailable, dict) or not unavailable:
        return ""
    return "not run on this machine: " + "; ".join(f"{name} ({reason})" for name, reason in sorted(unavailable.items()))


def bench_figure(row: pd.Series, table: str, size_name: str, contenders: dict[str, Points], path: Path) -> ReportFigure:
    colors = model_colors(sorted(contenders))
    note = unavailable_note(row.get("unavailable"))
    with report_style():
        figure = new_figure(11, 5, wspace=0.25)
        spaces = []
        for axis, (column, title, unit) in zip(figure.subplots(1, len(PANELS)), PANELS):
            lines = [split_points(name, points["size"].to_numpy(float), points[column].to_numpy(float),
                                  list(points["status"])) for name, points in contenders.items()]
            spaces.append(draw_cost_panel(axis, lines, colors, title, unit, f"{size_name} (log)"))
        fit_height(figure, spaces, note_lines=1 if note else 0)
        if note:
            figure.text(0.01, 0.01, note, fontsize=7)
        title = bench_title(row) + (f" · {table}" if table else "")
        figure.suptitle(f"Benchmark: {title} (α: fitted exponent of {size_name}, ok points only, "
                        f"shown with n ≥ {MIN_FIT_SIZES} sizes)")
        return write_figure(figure, path, f"Benchmark: {title}", ("bench", row["record_path"]))


def bench_figures(benches: pd.DataFrame, figures_dir: Path) -> list[ReportFigure]:
    """One figure per (bench record, results table) in the common layout."""
    written = []
    for _, row in benches.iterrows():
        for table, (size_name, contenders) in bench_tables(row["results"]).items():
            path = figures_dir / f"{slug('bench', Path(row['record_path']).stem, table or 'results')}.png"
            written.append(bench_figure(row, table, size_name, contenders, path))
    return written
