"""Accuracy against cost: mean Dice (± std over seeds) against MACs and latency at the training resolution.

The Pareto front joins the models no other model beats on both axes (more Dice for less cost). Each point's
name goes to the first spot around it (right above, left above, right below, ...) that clears the other names,
the points and the legend, so close models stay readable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from usemabench.leaderboard.aggregate import GroupBoard
from usemabench.reports.figures import ReportFigure, label_log_axis, new_figure, report_style, slug, write_figure


# (column, axis label, text of an empty panel, note before the models a panel lacks): latency counts only when
# timed on the device the model trained on.
COST_AXES = (
    ("macs", "MACs at the training resolution", "no MACs profiled at the training resolution", "no MACs profiled"),
    ("latency_ms", "inference latency (ms)", "no inference latency profiled at the training resolution\non the device the models trained on",
     "no latency on the training device"),
)
NOTE_OFFSET_PT = 34  # below the panel's x label
# Where a point's name may go, in points from the point: (x, y, horizontal alignment, vertical alignment).
LABEL_SPOTS = ((5, 4, "left", "bottom"), (-5, 4, "right", "bottom"), (5, -4, "left", "top"), (-5, -4, "right", "top"),
               (5, 12, "left", "bottom"), (-5, 12, "right", "bottom"), (5, -12, "left", "top"), (-5, -12, "right", "top"))


def _overlaps(first: Bbox, second: Bbox) -> bool:
    return first.x0 < second.x1 and second.x0 < first.x1 and first.y0 < second.y1 and second.y0 < first.y1


def place_labels(axis, labels: list[Annotation], markers: list[Line2D]) -> None:
    """Move each name to the first LABEL_SPOT inside the axes that clears the names placed before it, every
    marker and the legend; a name with no clear spot keeps the first (the layout check then reports it)."""
    renderer = FigureCanvasAgg(axis.figure).get_renderer()
    axis.figure.draw(renderer)  # final limits, so boxes are where they will be drawn
    inside = axis.get_window_extent(renderer)
    taken = [marker.get_window_extent(renderer) for marker in markers]
    taken += [axis.get_legend().get_window_extent(renderer)] if axis.get_legend() else []
    for label in labels:
        for x, y, horizontal, vertical in LABEL_SPOTS:
            label.set_position((x, y))
            label.set_horizontalalignment(horizontal)
            label.set_verticalalignment(vertical)
            box = label.get_window_extent(renderer)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if fits and not any(_overlaps(box, other) for other in taken):
                break
        else:
            x, y, horizontal, vertical = LABEL_SPOTS[0]
            label.set_position((x, y))
            label.set_horizontalalignment(horizontal)
            label.set_verticalalignment(vertical)
        taken.append(label.get_window_extent(renderer))


def pareto_front(costs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of points not dominated (lower-or-equal cost and higher score), ordered by cost."""
    costs, scores = np.asarray(costs, dtype=float), np.asarray(scores, dtype=float)
    order = np.lexsort((-scores, costs))
    front, best = [], -np.inf
    for index in order:
        if scores[index] > best:
            front.append(index)
            best = scores[index]
    return np.asarray(front, dtype=int)


def note_unmeasured(axis, missing: str, models: list[str]) -> None:
    """Name, under the panel, the models with a Dice but no cost on this axis, which have no point in it."""
    if models:
        axis.annotate(f"{missing}: {', '.join(models)}", xy=(0, 0), xycoords="axes fraction", xytext=(0, -NOTE_OFFSET_PT),
                      textcoords="offset points", va="top", fontsize=7)


def pareto_figure(board: GroupBoard, path: Path, colors: dict) -> ReportFigure | None:
    """Two panels (Dice vs MACs, Dice vs latency); None when no model has both a Dice and a cost."""
    table = board.table[board.table["dice_mean"].notna()]
    if not any(table[column].notna().any() for column, *_ in COST_AXES):
        return None
    with report_style():
        figure = new_figure(10, 4.2, left=0.07, bottom=0.17)
        axes = figure.subplots(1, len(COST_AXES))
        for axis, (column, label, absent, missing) in zip(axes, COST_AXES):
            points = table[table[column].gt(0)]
            note_unmeasured(axis, missing, sorted(set(table["model"]) - set(points["model"])))
            if points.empty:
                axis.text(0.5, 0.5, absent, ha="center", va="center", transform=axis.transAxes)
                axis.set_xlabel(label)
                continue
            labels, markers = [], []
            for _, row in points.sort_values("dice_mean", ascending=False, kind="stable").iterrows():
                error = row["dice_std_seeds"] if np.isfinite(row["dice_std_seeds"]) else None
                drawn = axis.errorbar(row[column], row["dice_mean"], yerr=error, marker="*" if row["is_reference"] else "o",
                                      markersize=10 if row["is_reference"] else 6, color=colors[row["model"]], capsize=2)
                markers.append(drawn.lines[0])
                labels.append(axis.annotate(row["model"], (row[column], row["dice_mean"]), textcoords="offset points",
                                            xytext=LABEL_SPOTS[0][:2], fontsize=7))
            front = points.iloc[pareto_front(points[column].to_numpy(), points["dice_mean"].to_numpy())]
            axis.step(front[column], front["dice_mean"], where="post", color="grey", linestyle="--", label="Pareto front")
            axis.set_xscale("log")
            axis.margins(x=0.15, y=0.15)  # room for the labels of the outermost points
            label_log_axis(axis.xaxis)
            axis.set_xlabel(f"{label} (log)")
            axis.set_ylabel("Dice, mean over seeds")
            axis.legend(loc="lower right")
            place_labels(axis, labels, markers)
        title = f"{board.dataset} · {board.protocol}"
        figure.suptitle(f"Accuracy against cost: {title}")
        return write_figure(figure, path, f"Accuracy against cost: {title}", ("group", board.dataset, board.protocol))


def pareto_figures(boards: list[GroupBoard], figures_dir: Path, colors: dict) -> list[ReportFigure]:
    written = []
    for board in boards:
        figure = pareto_figure(board, figures_dir / f"{slug('pareto', board.dataset, board.protocol)}.png", colors)
        if figure is not None:
            written.append(figure)
    return written
