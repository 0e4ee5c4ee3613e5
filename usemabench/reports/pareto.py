"""Accuracy against cost: mean Dice (± std over seeds) against MACs and latency at the training resolution.

The Pareto front joins the models no other model beats on both axes (more Dice for less cost).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
            rightmost = points[column].max()
            for _, row in points.iterrows():
                error = row["dice_std_seeds"] if np.isfinite(row["dice_std_seeds"]) else None
                axis.errorbar(row[column], row["dice_mean"], yerr=error, marker="*" if row["is_reference"] else "o",
                              markersize=10 if row["is_reference"] else 6, color=colors[row["model"]], capsize=2)
                at_right = row[column] == rightmost  # its label goes left, inside the axes
                axis.annotate(row["model"], (row[column], row["dice_mean"]), textcoords="offset points",
                              xytext=(-4 if at_right else 4, 4), ha="right" if at_right else "left", fontsize=7)
            front = points.iloc[pareto_front(points[column].to_numpy(), points["dice_mean"].to_numpy())]
            axis.step(front[column], front["dice_mean"], where="post", color="grey", linestyle="--", label="Pareto front")
            axis.set_xscale("log")
            axis.margins(x=0.15, y=0.15)  # room for the labels of the outermost points
            label_log_axis(axis.xaxis)
            axis.set_xlabel(f"{label} (log)")
            axis.set_ylabel("Dice, mean over seeds")
            axis.legend(loc="lower right")
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
