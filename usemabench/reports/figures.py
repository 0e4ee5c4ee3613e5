"""Byte-reproducible matplotlib figures: a fixed style, no pyplot state, no timestamps in the PNG.

A PNG written by Agg holds only the pixels and a `Software` text chunk; we set that chunk to the
matplotlib version (instead of a URL) so a figure states which renderer produced its exact bytes:
the same records and the same matplotlib version give the same file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter

from usemabench.core.io import atomic_write_bytes

DPI = 100
STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "legend.fontsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "usemabench",
    "image.interpolation": "nearest",
}
SOFTWARE_KEY = "Software"
DEFAULT_MARGINS = {"left": 0.06, "right": 0.98, "bottom": 0.13, "top": 0.88, "wspace": 0.22, "hspace": 0.2}


@dataclass(frozen=True)
class ReportFigure:
    """A written figure: where it is, what it shows, and the section of the report it belongs to."""

    path: Path
    title: str
    section: tuple[str, ...]


def software_tag() -> str:
    return f"matplotlib {matplotlib.__version__}"


@contextmanager
def report_style() -> Iterator[None]:
    """Matplotlib defaults plus STYLE, whatever the user's matplotlibrc says; restored on exit."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        yield


def new_figure(width: float, height: float, **margins: float) -> Figure:
    """A figure detached from pyplot (no global state, no GUI backend), rendered by Agg on save.

    Fixed margins (`subplots_adjust` keywords) rather than constrained layout, which draws every figure
    twice and more than doubles the time to build a report.
    """
    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.subplots_adjust(**{**DEFAULT_MARGINS, **margins})
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={SOFTWARE_KEY: software_tag()})
    return atomic_write_bytes(path, buffer.getvalue())


class CompactLogFormatter(Formatter):
    """Short labels on a log axis ('200M', '1.5G', '0.3'): every tick when the axis spans under a decade,
    else only the 1×, 2× and 5× ticks, so a short axis still has labels and a long one is not crowded."""

    def __call__(self, value: float, pos: int | None = None) -> str:
        low, high = sorted(self.axis.get_view_interval())
        if not (low > 0 and high / low < 10) and f"{value:.1e}"[0] not in "125":
            return ""
        for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if value >= factor:
                return f"{value / factor:.3g}{suffix}"
        return f"{value:.3g}"


def label_log_axis(axis: Axis) -> None:
    axis.set_major_formatter(CompactLogFormatter())
    axis.set_minor_formatter(CompactLogFormatter())


def slug(*parts: object) -> str:
    """A file-name-safe, readable name: 'NVIDIA H100 80GB', 'bf16' -> 'nvidia-h100-80gb_bf16'."""
    cleaned = [re.sub(r"[^a-z0-9.]+", "-", str(part).lower()).strip("-.") or "none" for part in parts]
    return "_".join(cleaned)
