"""Cost against resolution: MACs, peak memory and latency per model, log-log, with fitted exponents.

The x axis is the number of pixels (H·W), so the slope of a line is the exponent α in cost ∝ pixels^α:
about 1 for convolutions, SEMA and scans, about 2 for full attention at large sizes. Points that ran out
of memory (and so have no value in that panel) are drawn as crosses on the panel's top edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
from matplotlib.transforms import blended_transform_factory

from usemabench.reports.figures import ReportFigure, label_log_axis, new_figure, report_style, save_png, slug

# (column, axis label, divisor): memory in MiB, the unit the tables use (fitted exponents do not change).
PANELS = (("macs", "MACs", 1), ("peak_memory_bytes", "peak memory (MiB)", 2**20), ("latency_ms", "latency (ms)", 1))


def scaling_exponent(pixels: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of log(value) on log(pixels) over positive points; NaN with < 2 distinct sizes."""
    pixels, values = np.asarray(pixels, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(values) & (values > 0) & (pixels > 0)
    if np.unique(pixels[keep]).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(pixels[keep]), np.log(values[keep]), 1)[0])


def model_colors(models: list[str]) -> dict[str, tuple]:
    """A stable colour per model (or profile series) name, in sorted order, shared by a report's charts."""
    palette = colormaps["tab20" if len(models) > 10 else "tab10"]
    return {name: palette(index % palette.N) for index, name in enumerate(sorted(models))}


def _resolution_label(resolution: tuple[int, int]) -> str:
    height, width = resolution
    return f"{height}²" if height == width else f"{height}×{width}"


@dataclass(frozen=True)
class Series:
    """One line of a log-log cost panel: sizes and values where measured, sizes where the run failed."""

    name: str
    sizes: np.ndarray
    values: np.ndarray
    failed_sizes: np.ndarray


def draw_cost_panel(axis, lines: list[Series], colors: dict, title: str, xlabel: str, failed_label: str) -> None:
    """Log-log lines with the fitted exponent in the legend; failed sizes as crosses on the top edge."""
    top_edge = blended_transform_factory(axis.transData, axis.transAxes)
    drawn = failed = False
    for line in lines:
        if line.values.size:
            alpha = scaling_exponent(line.sizes, line.values)
            label = f"{line.name} (α={alpha:.2f})" if np.isfinite(alpha) else line.name
            axis.plot(line.sizes, line.values, marker="o", markersize=3, color=colors[line.name], label=label)
            drawn = True
        if line.failed_sizes.size:
            axis.scatter(line.failed_sizes, np.full(line.failed_sizes.size, 0.97), marker="x", s=40,
                         color=colors[line.name], transform=top_edge, clip_on=False, zorder=3)
            failed = True
    axis.set_xscale("log")
    label_log_axis(axis.xaxis)
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    if not drawn:
        axis.text(0.5, 0.5, "no measurements", ha="center", va="center", transform=axis.transAxes)
        return
    axis.set_yscale("log")
    label_log_axis(axis.yaxis)
    handles, labels = axis.get_legend_handles_labels()
    if failed:
        handles.append(Line2D([], [], marker="x", linestyle="", color="black"))
        labels.append(failed_label)
    axis.legend(handles, labels, loc="upper left")


def scaling_figure(costs: pd.DataFrame, device: str, precision: str, mode: str, path: Path, colors: dict) -> ReportFigure:
    """One figure, three panels (MACs, memory, latency), for the profiles of one (device, precision, mode)."""
    with report_style():
        figure = new_figure(13, 4.2)
        axes = figure.subplots(1, len(PANELS))
        ticks = costs.drop_duplicates("pixels").sort_values("pixels")
        for axis, (column, label, divisor) in zip(axes, PANELS):
            lines = []
            for series, rows in costs.groupby("series", sort=True):
                measured = rows[rows[column].gt(0)]
                oom = rows[rows["status"].eq("oom") & ~rows[column].gt(0)]
                lines.append(Series(series, measured["pixels"].to_numpy(float),
                                    measured[column].to_numpy(float) / divisor, oom["pixels"].to_numpy(float)))
            draw_cost_panel(axis, lines, colors, label, "resolution (log of pixels)", "out of memory")
            axis.set_xticks(ticks["pixels"], [_resolution_label(value) for value in ticks["resolution"]])
            axis.xaxis.set_minor_locator(NullLocator())
        title = f"{device} · {precision} · {mode}"
        figure.suptitle(f"Cost against resolution: {title} (α: fitted exponent of pixels)")
        save_png(figure, path)
    return ReportFigure(path, f"Scaling: {title}", ("costs", device, precision, mode))


def scaling_figures(costs: pd.DataFrame, figures_dir: Path, colors: dict) -> list[ReportFigure]:
    """One scaling figure per (device, precision, mode) present in the profile records."""
    if costs.empty:
        return []
    written = []
    for (device, precision, mode), rows in costs.groupby(["device", "precision", "mode"], sort=True):
        path = figures_dir / f"{slug('scaling', device, precision, mode)}.png"
        written.append(scaling_figure(rows, device, precision, mode, path, colors))
    return written
