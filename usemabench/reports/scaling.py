"""Cost against resolution: MACs, peak memory and latency per model, log-log, with fitted exponents.

The x axis is the number of pixels (H·W), so the slope of a line is the exponent α in cost ∝ pixels^α:
about 1 for convolutions, SEMA and scans, about 2 for full attention at large sizes. α is fitted on the
runs that finished ok only, and shown with n (the sizes it is fitted on) only from MIN_FIT_SIZES sizes up:
a line through two points fits them exactly, whatever the curve does between and beyond them.

A run that did not finish ok is never a point of a line. When its value was counted without running it
(the MACs of an out-of-memory run) it is a hollow marker; otherwise it is a marker for its status (out of
memory, unsupported, failed, skipped) in a strip above the panel, outside the data area, so it never reads
as a measurement. Legends sit below the panels, where they cover no data.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
from matplotlib.transforms import blended_transform_factory, offset_copy

from usemabench.reports.figures import OUTSIDE_MARKER_GID, ReportFigure, label_log_axis, new_figure, report_style, slug, write_figure

# (column, panel title, unit of the y axis, divisor): memory in MiB, the unit the tables use.
PANELS = (("macs", "MACs", "MACs", 1), ("peak_memory_bytes", "peak memory", "MiB", 2**20),
          ("latency_ms", "latency", "ms", 1))
MIN_FIT_SIZES = 3
# A marker and a line style per series (on top of its colour), so lines that coincide stay distinguishable.
LINE_MARKERS = ("o", "s", "^", "D", "v", "p", "h", "<", ">")
LINE_STYLES = ("-", "--", "-.", ":")
# Markers of runs that did not finish ok, drawn above the panel; not among LINE_MARKERS.
STATUS_MARKERS = {"oom": ("x", "out of memory"), "unsupported": ("*", "unsupported"), "failed": ("+", "failed"),
                  "skipped": ("_", "skipped")}
OTHER_STATUS_MARKER = "."
COUNTED_LABEL = "counted, not run (not fitted)"
# Layout, in points and inches: the not-run strip (first row above the panel, then per row), then the figure.
# A row is taller than a marker with its edge (NOT_RUN_MARKER_PT + NOT_RUN_EDGE_PT), so stacked markers never touch.
STRIP_BASE_PT, STRIP_STEP_PT, TITLE_PAD_PT = 7.0, 10.0, 7.0
NOT_RUN_MARKER_PT, NOT_RUN_EDGE_PT = 6.5, 1.5
PANEL_IN, TITLES_IN, X_AXIS_PT, LEGEND_GAP_IN, NOTE_IN = 2.9, 0.6, 30.0, 0.1, 0.2
TWO_COLUMN_CHARS = 26  # longest legend label that still fits twice side by side under a panel at 7 pt (29 was cut off)


def scaling_exponent(pixels: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of log(value) on log(pixels) over positive points; NaN under MIN_FIT_SIZES sizes."""
    pixels, values = np.asarray(pixels, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(values) & (values > 0) & (pixels > 0)
    if np.unique(pixels[keep]).size < MIN_FIT_SIZES:
        return float("nan")
    return float(np.polyfit(np.log(pixels[keep]), np.log(values[keep]), 1)[0])


def model_colors(models: list[str]) -> dict[str, tuple]:
    """A stable colour per model (or profile series) name, in sorted order, shared by a report's charts."""
    palette = colormaps["tab20" if len(models) > 10 else "tab10"]
    return {name: palette(index % palette.N) for index, name in enumerate(sorted(models))}


def series_style(colors: dict, name: str) -> tuple[str, str]:
    """(marker, line style) of a series, from its place among `colors`' names: stable across a report."""
    index = sorted(colors).index(name)
    return LINE_MARKERS[index % len(LINE_MARKERS)], LINE_STYLES[index % len(LINE_STYLES)]


def _resolution_label(resolution: tuple[int, int]) -> str:
    height, width = resolution
    return f"{height}²" if height == width else f"{height}×{width}"


@dataclass(frozen=True)
class NotOk:
    """A run that did not finish ok: its size, its status, and its value when counted without running (else NaN)."""

    size: float
    status: str
    value: float

    @property
    def counted(self) -> bool:
        return self.value > 0


@dataclass(frozen=True)
class Series:
    """One line of a log-log cost panel: the ok measurements (drawn and fitted) and the runs that were not ok."""

    name: str
    sizes: np.ndarray
    values: np.ndarray
    not_ok: tuple[NotOk, ...] = ()


def split_points(name: str, sizes: np.ndarray, values: np.ndarray, statuses: list[str]) -> Series:
    """Ok points with a positive value make the line; every other status is kept apart, to be marked and never
    fitted. An ok point without a value (a quantity that run did not measure) is left out."""
    sizes, values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    ok = np.asarray(statuses, dtype=object) == "ok"
    line = ok & (values > 0)
    not_ok = tuple(NotOk(size, status, value if value > 0 else math.nan)
                   for size, value, status in zip(sizes, values, statuses) if status != "ok")
    return Series(name, sizes[line], values[line], not_ok)


def fit_label(line: Series) -> str:
    """'name (α=1.83, n=4)'; under MIN_FIT_SIZES ok sizes only 'name (n=2)', as such a fit is exact by construction."""
    sizes = np.unique(line.sizes).size
    alpha = scaling_exponent(line.sizes, line.values)
    return f"{line.name} (α={alpha:.2f}, n={sizes})" if np.isfinite(alpha) else f"{line.name} (n={sizes})"


@dataclass(frozen=True)
class PanelSpace:
    """What a drawn panel needs above it: the rows of its not-run strip (its legend below is measured once drawn)."""

    strip_rows: int


def _strip_height_pt(rows: int) -> float:
    """Height above a panel taken by `rows` rows of not-run markers (to the centre of the top row)."""
    return STRIP_BASE_PT + STRIP_STEP_PT * (rows - 1) if rows else 0.0


def _status_marker(status: str) -> tuple[str, str]:
    return STATUS_MARKERS.get(status, (OTHER_STATUS_MARKER, status))


def _mark_not_run(axis, point: NotOk, row: int, color: tuple) -> None:
    """A status marker above the data area at the point's size; `row` stacks markers of several series at one size."""
    above = offset_copy(blended_transform_factory(axis.transData, axis.transAxes), fig=axis.figure,
                        y=STRIP_BASE_PT + STRIP_STEP_PT * row, units="points")
    axis.plot([point.size], [1.0], marker=_status_marker(point.status)[0], markersize=NOT_RUN_MARKER_PT,
              markeredgewidth=NOT_RUN_EDGE_PT, linestyle="", color=color, transform=above, clip_on=False,
              gid=OUTSIDE_MARKER_GID)
    axis.update_datalim([(point.size, 1.0)], updatey=False)  # the x range covers sizes that only failed


def _legend(axis, statuses: set[str], counted: bool) -> None:
    """The panel's legend below its x axis (fits, hollow points, status markers)."""
    handles, labels = axis.get_legend_handles_labels()
    if counted:
        handles.append(Line2D([], [], marker="o", markerfacecolor="none", linestyle="", color="black"))
        labels.append(COUNTED_LABEL)
    known = list(STATUS_MARKERS)
    for status in sorted(statuses, key=lambda name: (known.index(name) if name in known else len(known), name)):
        marker, label = _status_marker(status)
        handles.append(Line2D([], [], marker=marker, markeredgewidth=1.5, linestyle="", color="black"))
        labels.append(f"not run: {label}")
    if not handles:
        return
    columns = 2 if max(map(len, labels)) <= TWO_COLUMN_CHARS else 1
    below = offset_copy(axis.transAxes, fig=axis.figure, y=-X_AXIS_PT, units="points")
    axis.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=columns,
                frameon=False)


def draw_cost_panel(axis, lines: list[Series], colors: dict, title: str, unit: str, xlabel: str) -> PanelSpace:
    """Log-log lines of the ok runs (α in the legend), hollow markers for values counted without a run, status
    markers above the data area for runs without a value; returns the room the strip and legend need."""
    stacked, statuses, counted, drawn = Counter(), set(), False, False
    for line in lines:
        color = colors[line.name]
        marker, linestyle = series_style(colors, line.name)
        if line.values.size:
            axis.plot(line.sizes, line.values, marker=marker, markersize=3.5, linestyle=linestyle, color=color,
                      label=fit_label(line))
            drawn = True
        for point in line.not_ok:
            if point.counted:
                axis.plot([point.size], [point.value], marker=marker, markersize=5, markerfacecolor="none",
                          linestyle="", color=color)
                counted = drawn = True
            else:
                _mark_not_run(axis, point, stacked[point.size], color)
                stacked[point.size] += 1
                statuses.add(point.status)
    strip_rows = max(stacked.values(), default=0)
    axis.set_xscale("log")
    label_log_axis(axis.xaxis)
    axis.set_xlabel(xlabel)
    axis.set_title(title)  # raised above the not-run strip by fit_height
    if drawn:
        axis.set_yscale("log")
        label_log_axis(axis.yaxis)
        axis.set_ylabel(f"{unit} (log)")
    else:
        axis.text(0.5, 0.5, "no measurements", ha="center", va="center", transform=axis.transAxes)
    _legend(axis, statuses, counted)
    return PanelSpace(strip_rows)


def fit_height(figure: Figure, spaces: list[PanelSpace], note_lines: int = 0) -> None:
    """Size the figure so that every panel keeps PANEL_IN of height, with room above for titles and the tallest
    not-run strip, and below for the x axis, the tallest legend (as drawn) and `note_lines` lines of footnote;
    panel titles all clear that strip, so they stay level."""
    strip_pt = _strip_height_pt(max(space.strip_rows for space in spaces))
    for axis in figure.axes:
        axis.set_title(axis.get_title(), pad=strip_pt + TITLE_PAD_PT)
    top = TITLES_IN + strip_pt / 72
    renderer = FigureCanvasAgg(figure).get_renderer()
    legends = [axis.get_legend().get_window_extent(renderer).height / figure.dpi for axis in figure.axes if axis.get_legend()]
    bottom = X_AXIS_PT / 72 + LEGEND_GAP_IN + max(legends, default=0.0) + NOTE_IN * note_lines
    height = top + PANEL_IN + bottom
    figure.set_size_inches(figure.get_figwidth(), height)
    figure.subplots_adjust(top=1 - top / height, bottom=bottom / height)


def profile_series(rows: pd.DataFrame, column: str, divisor: float) -> Series:
    """One profile series' points of one panel, in the panel's unit."""
    return split_points(str(rows["series"].iloc[0]), rows["pixels"].to_numpy(float),
                        rows[column].to_numpy(float) / divisor, list(rows["status"]))


def scaling_figure(costs: pd.DataFrame, device: str, precision: str, mode: str, path: Path, colors: dict) -> ReportFigure:
    """One figure, three panels (MACs, memory, latency), for the profiles of one (device, precision, mode)."""
    with report_style():
        figure = new_figure(13, 5, wspace=0.3)
        axes = figure.subplots(1, len(PANELS))
        ticks = costs.drop_duplicates("pixels").sort_values("pixels")
        spaces = []
        for axis, (column, title, unit, divisor) in zip(axes, PANELS):
            lines = [profile_series(rows, column, divisor) for _, rows in costs.groupby("series", sort=True)]
            spaces.append(draw_cost_panel(axis, lines, colors, title, unit, "resolution (log of pixels)"))
            axis.set_xticks(ticks["pixels"], [_resolution_label(value) for value in ticks["resolution"]])
            axis.xaxis.set_minor_locator(NullLocator())
        fit_height(figure, spaces)
        title = f"{device} · {precision} · {mode}"
        figure.suptitle(f"Cost against resolution: {title} (α: fitted exponent of pixels, ok runs only, "
                        f"shown with n ≥ {MIN_FIT_SIZES} sizes)")
        return write_figure(figure, path, f"Scaling: {title}", ("costs", device, precision, mode))


def scaling_figures(costs: pd.DataFrame, figures_dir: Path, colors: dict) -> list[ReportFigure]:
    """One scaling figure per (device, precision, mode) present in the profile records."""
    if costs.empty:
        return []
    written = []
    for (device, precision, mode), rows in costs.groupby(["device", "precision", "mode"], sort=True):
        path = figures_dir / f"{slug('scaling', device, precision, mode)}.png"
        written.append(scaling_figure(rows, device, precision, mode, path, colors))
    return written
