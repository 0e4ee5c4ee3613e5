"""Byte-reproducible matplotlib figures: a fixed style, no pyplot state, no timestamps in the PNG.

A PNG written by Agg holds only the pixels and a `Software` text chunk; we set that chunk to the
matplotlib version (instead of a URL) so a figure states which renderer produced its exact bytes:
the same records and the same matplotlib version give the same file.

Before a figure is written, `layout_problems` measures what Agg draws: a label, legend or marker outside the
canvas (cut off in the PNG) or two of them on top of each other is named in the figure's `layout_problems`,
which the build turns into a note on the page, so a clipped chart is reported rather than shipped unseen.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text
from matplotlib.ticker import Formatter
from matplotlib.transforms import Bbox

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
# gid of markers drawn outside the data area (a run that did not finish), checked for overlap like labels.
OUTSIDE_MARKER_GID = "outside-marker"
OVERLAP_TOLERANCE_PX = 0.5  # boxes that only touch do not overlap
# Tick labels on log axes: an upper bound of a character's width and of a line's height (in ems), and the gap kept.
LABEL_CHAR_EM, LABEL_HEIGHT_EM, LABEL_GAP_PX = 0.65, 1.3, 4.0


@dataclass(frozen=True)
class ReportFigure:
    """A written figure: where it is, what it shows, and the section of the report it belongs to."""

    path: Path
    title: str
    section: tuple[str, ...]
    layout_problems: tuple[str, ...] = ()


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


def write_figure(figure: Figure, path: Path, title: str, section: tuple[str, ...]) -> ReportFigure:
    """Check the layout, write the PNG, and describe it for the report."""
    problems = tuple(layout_problems(figure))
    return ReportFigure(save_png(figure, path), title, section, problems)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 30 else f"{text[:29]}…"


def _shown_ticks(axis: Axis) -> list[Text]:
    """The tick labels Agg draws: major and minor, with text, at a location inside the view."""
    low, high = sorted(axis.get_view_interval())
    labels = []
    for locations, ticks in ((axis.get_majorticklocs(), axis.get_major_ticks), (axis.get_minorticklocs(), axis.get_minor_ticks)):
        for location, tick in zip(locations, ticks(len(locations))):
            if low <= location <= high and tick.label1.get_visible() and tick.label1.get_text():
                labels.append(tick.label1)
    return labels


def drawn_boxes(figure: Figure) -> list[tuple[str, Bbox]]:
    """(what, box in pixels) of every label, title, note, legend, tick label and outside marker, as Agg draws them."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    boxes = []

    def add(name: str, artist: Artist) -> None:
        if artist.get_visible() and not (isinstance(artist, Text) and not artist.get_text().strip()):
            boxes.append((name, artist.get_window_extent(renderer)))

    for text in figure.texts:
        add(f"figure text '{_short(text.get_text())}'", text)
    for legend in figure.legends:
        add("figure legend", legend)
    for index, axis in enumerate(figure.axes):
        panel = f"panel {index + 1}" + (f" ({_short(axis.get_title())})" if axis.get_title() else "")
        add(f"{panel} title", axis.title)
        add(f"{panel} x label '{_short(axis.get_xlabel())}'", axis.xaxis.label)
        add(f"{panel} y label '{_short(axis.get_ylabel())}'", axis.yaxis.label)
        for text in axis.texts:
            add(f"{panel} text '{_short(text.get_text())}'", text)
        if axis.get_legend() is not None:
            add(f"{panel} legend", axis.get_legend())
        for name, ticks in (("x", axis.xaxis), ("y", axis.yaxis)):
            for label in _shown_ticks(ticks):
                add(f"{panel} {name} tick '{label.get_text()}'", label)
        for line in axis.lines:
            if line.get_gid() == OUTSIDE_MARKER_GID and line.get_visible():  # the box of the marker and its edge
                box = line.get_window_extent(renderer).padded(line.get_markeredgewidth() * figure.dpi / 72 / 2)
                boxes.append((f"{panel} marker above the data at x={line.get_xdata()[0]:g}", box))
    return boxes


def _overlap(first: Bbox, second: Bbox) -> bool:
    return (first.x0 < second.x1 - OVERLAP_TOLERANCE_PX and second.x0 < first.x1 - OVERLAP_TOLERANCE_PX
            and first.y0 < second.y1 - OVERLAP_TOLERANCE_PX and second.y0 < first.y1 - OVERLAP_TOLERANCE_PX)


def layout_problems(figure: Figure) -> list[str]:
    """What a reader would find cut off at the canvas edge or printed over something else, in words."""
    boxes = drawn_boxes(figure)
    canvas = figure.bbox
    problems = [
        f"{name} is cut off at the figure's edge"
        for name, box in boxes
        if box.x0 < canvas.x0 - OVERLAP_TOLERANCE_PX or box.y0 < canvas.y0 - OVERLAP_TOLERANCE_PX
        or box.x1 > canvas.x1 + OVERLAP_TOLERANCE_PX or box.y1 > canvas.y1 + OVERLAP_TOLERANCE_PX
    ]
    for index, (name, box) in enumerate(boxes):
        problems += [f"{name} overlaps {other}" for other, other_box in boxes[index + 1:] if _overlap(box, other_box)]
    return problems


def compact_number(value: float) -> str:
    """'200M', '1.5G', '0.3': a tick value in the units the tables use."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


class CompactLogFormatter(Formatter):
    """Short labels on a log axis, as many as fit without touching: the 1× ticks first, then 2× and 5×, then (when the
    axis spans under a decade) the others, each only where its text keeps LABEL_GAP_PX clear of every label already
    placed on the axis (the major ticks' labels included when labelling the minor ones)."""

    def __init__(self, minor: bool) -> None:
        self.minor = minor

    def __call__(self, value: float, pos: int | None = None) -> str:
        return compact_number(value)

    def format_ticks(self, values) -> list[str]:
        low, high = sorted(self.axis.get_view_interval())
        short_axis = low > 0 and high / low < 10
        placed = []
        if self.minor:
            placed = [(self._position(value), compact_number(value)) for value in self.axis.get_majorticklocs() if low <= value <= high]
        chosen = set()
        order = sorted(range(len(values)), key=lambda index: (_priority(values[index]), values[index]))
        for index in order:
            value = values[index]
            if not low <= value <= high or (_priority(value) == 2 and not short_axis):
                continue
            candidate = (self._position(value), compact_number(value))
            if all(self._clear(candidate, other) for other in placed):
                placed.append(candidate)
                chosen.add(index)
        return [compact_number(value) if index in chosen else "" for index, value in enumerate(values)]

    def _position(self, value: float) -> float:
        """The tick's place along the axis, in pixels."""
        vertical = self.axis.axis_name == "y"
        point = (0.0, value) if vertical else (value, 0.0)
        blended = self.axis.axes.get_yaxis_transform() if vertical else self.axis.axes.get_xaxis_transform()
        return float(blended.transform(point)[1 if vertical else 0])

    def _clear(self, first: tuple[float, str], second: tuple[float, str]) -> bool:
        """Whether two labels centred at their ticks keep LABEL_GAP_PX apart along the axis."""
        size = FontProperties(size=matplotlib.rcParams[f"{self.axis.axis_name}tick.labelsize"]).get_size_in_points()
        pixels = size * self.axis.figure.dpi / 72
        if self.axis.axis_name == "y":
            extent = pixels * LABEL_HEIGHT_EM
        else:
            extent = pixels * LABEL_CHAR_EM * (len(first[1]) + len(second[1])) / 2
        return abs(first[0] - second[0]) >= extent + LABEL_GAP_PX


def _priority(value: float) -> int:
    """0 for 1× a power of ten, 1 for 2× and 5×, 2 for the other ticks."""
    mantissa = f"{value:.1e}"[0]
    return 0 if mantissa == "1" else 1 if mantissa in "25" else 2


def label_log_axis(axis: Axis) -> None:
    axis.set_major_formatter(CompactLogFormatter(minor=False))
    axis.set_minor_formatter(CompactLogFormatter(minor=True))


def slug(*parts: object) -> str:
    """A file-name-safe, readable name: 'NVIDIA H100 80GB', 'bf16' -> 'nvidia-h100-80gb_bf16'."""
    cleaned = [re.sub(r"[^a-z0-9.]+", "-", str(part).lower()).strip("-.") or "none" for part in parts]
    return "_".join(cleaned)
