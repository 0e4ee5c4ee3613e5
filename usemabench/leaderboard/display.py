"""Aggregated numbers -> display tables (formatted text plus a sort key per cell), shared by Markdown and HTML."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from usemabench.leaderboard.aggregate import GroupBoard, short_error
from usemabench.leaderboard.store import Problem
from usemabench.zoo.registry import get_model_info

MISSING = "–"
CONVENTIONS = (
    "Dice (seeds), HD95 px (seeds): mean ± std over seeds of each run's mean over test cases and classes.",
    "Dice (cases), HD95 px (cases): mean ± std over test cases of the case score (mean over classes), each case "
    "averaged over seeds first. Dice 95% CI: BCa bootstrap of the mean over cases (2000 resamples, seeded). "
    "HD95 in pixels (the evaluator's distance unit; the datasets carry no physical spacing).",
    "ΔDice: mean paired difference to the reference model over the cases both have, with its bootstrap CI; "
    "p (Holm): two-sided Wilcoxon signed-rank test over those cases, Holm-corrected across the models of a table.",
    "params: of the trained model, from the training record (else from the profile). MACs (multiply-accumulates "
    "of one forward pass of one image) and latency (inference median): from the batch-1 inference profile of the "
    "architecture registered under the model's name, at the training resolution, matched by name, not by config "
    "hash; that profile builds the model with its own in_channels and num_classes, so its first and last layers "
    "may differ from the trained model's. Latency only from a profile on the device and at the precision the model "
    "was trained with.",
    "peak train memory: the training run's peak, at the protocol's batch size; else that of a batch-1 "
    "training-mode profile on the training device and precision.",
    "Runs are pooled (one board, one row, one paired test) only when their protocol hash, split hash, data hash "
    "(the data's content) and model config hash agree; a name that covers several gets one board or row per "
    "hash, labelled [protocol …], [split …], [data …] or [config …] with the hash's first characters (records "
    "made before data hashes count as [data none]; a [config …] row has no profile costs, as "
    "profiles are matched by model name).",
    "Cost tables (per device, precision and mode): in train mode, MACs and FLOPs count the forward and backward "
    "pass of one image (fwd+bwd).",
    "rank: by Dice (seeds). Partial, failed, not evaluated and missing runs are listed with their reason, never dropped.",
)
HD95_POOLED_CONVENTION = (
    "HD95 is MONAI's convention: the larger of the two directed 95th percentiles of the boundary distances. "
    "HD95 pooled (medpy) px (seeds): medpy's `hd95`, the 95th percentile of both directions' distances pooled, "
    "as in the TransUNet, Swin-UNet and VM-UNet evaluation scripts; usually below HD95; shown only for models "
    "whose every evaluated seed recorded it."
)


def has_hd95_pooled(board: GroupBoard) -> bool:
    """Whether any row of the board has the pooled HD95 (records written before it existed do not)."""
    return "hd95_pooled_mean" in board.table and bool(np.isfinite(board.table["hd95_pooled_mean"].astype(float)).any())


def conventions(boards: list[GroupBoard]) -> tuple[str, ...]:
    """The how-to-read lines; the HD95 convention line only where a table shows the pooled column."""
    return (*CONVENTIONS, HD95_POOLED_CONVENTION) if any(has_hd95_pooled(board) for board in boards) else CONVENTIONS


@dataclass(frozen=True)
class Table:
    """A rendered table: header, cell texts, and sort keys (numbers or text; None sorts last).

    `secondary` marks the columns a page may fold away (empty: none); `families` gives each row's model family,
    for a page's family filter (empty: the rows are not models).
    """

    columns: list[str]
    rows: list[list[str]]
    sort_keys: list[list[float | str | None]]
    numeric: list[bool]
    secondary: list[bool] = field(default_factory=list)
    families: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    header: str
    text: Callable[[pd.Series], str]
    key: Callable[[pd.Series], float | str | None]
    numeric: bool = True
    secondary: bool = False  # detail a reader opens on demand (the HTML page folds it behind a toggle)


def _finite(value: object) -> bool:
    """A real, finite number (numpy scalars included; booleans are not numbers here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def number(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _finite(value) else MISSING


def mean_std(mean: object, std: object, digits: int = 3) -> str:
    if not _finite(mean):
        return MISSING
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if _finite(std) else f"{mean:.{digits}f}"


def interval(low: object, high: object, digits: int = 3) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]" if _finite(low) and _finite(high) else MISSING


def signed_with_interval(value: object, low: object, high: object, digits: int = 3) -> str:
    if not _finite(value):
        return MISSING
    text = f"{value:+.{digits}f}"
    return f"{text} {interval(low, high, digits)}" if _finite(low) else text


def p_value(value: object) -> str:
    if not _finite(value):
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def scaled(value: object, units: tuple[tuple[float, str], ...], digits: int = 1) -> str:
    """`value` in the largest unit it reaches, e.g. 29_800_000 -> '29.8M'; below the smallest unit, as is."""
    if not _finite(value):
        return MISSING
    for factor, suffix in units:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}f}{suffix}" if factor > 1 else f"{value:g}{suffix}"
    return f"{value:g}{units[-1][1]}"


COUNT_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))
BYTE_UNITS = ((2**40, " TiB"), (2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB"), (1.0, " B"))


def count(value: object) -> str:
    return scaled(value, COUNT_UNITS)


def memory(value: object) -> str:
    return scaled(value, BYTE_UNITS)


def milliseconds(value: object, spread: object = None) -> str:
    if not _finite(value):
        return MISSING
    return f"{value:.2f} ({spread:.2f})" if _finite(spread) else f"{value:.2f}"


def key(value: object) -> float | None:
    return float(value) if _finite(value) else None


def _text_key(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def text(value: object) -> str:
    return value if isinstance(value, str) and value else MISSING


UNREGISTERED = "unregistered"


def model_family(label: str) -> str:
    """The registered family of a table's model label ('usema_s', 'usema_s [config 1a2b]'); UNREGISTERED when the
    registry does not know the name (a user's model whose module is not imported)."""
    try:
        return get_model_info(label.split(" [")[0]).family
    except KeyError:
        return UNREGISTERED


def render(frame: pd.DataFrame, columns: list[Column], model_column: str | None = "model") -> Table:
    """The table of `frame`; rows carry the family of `model_column` (None: rows that are not models)."""
    rows = [[column.text(row) for column in columns] for _, row in frame.iterrows()]
    keys = [[column.key(row) for column in columns] for _, row in frame.iterrows()]
    families = [model_family(str(name)) for name in frame[model_column]] if model_column else []
    return Table([column.header for column in columns], rows, keys, [column.numeric for column in columns],
                 [column.secondary for column in columns], families)


def _model_label(row: pd.Series) -> str:
    return f"{row['model']} (ref)" if row.get("is_reference", False) else row["model"]


def leaderboard_table(board: GroupBoard) -> Table:
    reference = board.reference or "ref"
    columns = [
        Column("rank", lambda r: number(r["rank"], 0), lambda r: key(r["rank"])),
        Column("model", _model_label, lambda r: r["model"], numeric=False),
        Column("family", lambda r: model_family(r["model"]), lambda r: model_family(r["model"]), numeric=False),
        Column("status", lambda r: r["status"], lambda r: r["status"], numeric=False),
        Column("seeds", lambda r: f"{r['seeds_ok']}/{r['seeds_expected']}", lambda r: key(r["seeds_ok"])),
        Column("Dice (seeds)", lambda r: mean_std(r["dice_mean"], r["dice_std_seeds"]), lambda r: key(r["dice_mean"])),
        Column("Dice (cases)", lambda r: mean_std(r["dice_cases_mean"], r["dice_cases_std"]), lambda r: key(r["dice_cases_mean"]),
               secondary=True),
        Column("Dice 95% CI", lambda r: interval(r["dice_ci_low"], r["dice_ci_high"]), lambda r: key(r["dice_ci_low"])),
        Column("HD95 px (seeds)", lambda r: mean_std(r["hd95_mean"], r["hd95_std_seeds"], 2), lambda r: key(r["hd95_mean"])),
        Column("HD95 px (cases)", lambda r: mean_std(r["hd95_cases_mean"], r["hd95_cases_std"], 2),
               lambda r: key(r["hd95_cases_mean"]), secondary=True),
        *([Column(
            "HD95 pooled (medpy) px (seeds)",
            lambda r: mean_std(r["hd95_pooled_mean"], r["hd95_pooled_std_seeds"], 2),
            lambda r: key(r["hd95_pooled_mean"]),
            secondary=True,
        )] if has_hd95_pooled(board) else []),
        Column(
            f"ΔDice vs {reference} [95% CI]",
            lambda r: signed_with_interval(r["delta_dice"], r["delta_dice_ci_low"], r["delta_dice_ci_high"]),
            lambda r: key(r["delta_dice"]),
        ),
        Column("p (Holm)", lambda r: p_value(r["p_holm"]), lambda r: key(r["p_holm"])),
        Column("params", lambda r: count(r["params"]), lambda r: key(r["params"])),
        Column("MACs", lambda r: count(r["macs"]), lambda r: key(r["macs"])),
        Column("peak train memory", lambda r: memory(r["peak_train_memory_bytes"]), lambda r: key(r["peak_train_memory_bytes"]),
               secondary=True),
        Column("latency ms", lambda r: milliseconds(r["latency_ms"]), lambda r: key(r["latency_ms"])),
        Column("note", lambda r: r["note"], lambda r: _text_key(r["note"]), numeric=False),
    ]
    return render(board.table, columns)


def per_class_table(board: GroupBoard) -> Table:
    classes = [column for column in board.per_class.columns if column != "model"]
    columns = [Column("model", lambda r: r["model"], lambda r: r["model"], numeric=False)]
    for name in classes:
        columns.append(Column(name, lambda r, name=name: number(r[name]), lambda r, name=name: key(r[name])))
    return render(board.per_class, columns)


def runs_table(board: GroupBoard) -> Table:
    columns = [
        Column("model", lambda r: r["model"], lambda r: r["model"], numeric=False),
        Column("seed", lambda r: r["seed"], lambda r: key(float(r["seed"])) if r["seed"].isdigit() else None),
        Column("status", lambda r: r["status"], lambda r: r["status"], numeric=False),
        Column("record", lambda r: r["record"], lambda r: _text_key(r["record"]), numeric=False),
        Column("note", lambda r: r["note"], lambda r: _text_key(r["note"]), numeric=False),
    ]
    return render(board.runs, columns)


def _counted_as(costs: pd.DataFrame) -> str:
    """' (fwd+bwd)' for training-mode profiles, whose MACs and FLOPs count the backward pass too, else ''."""
    return " (fwd+bwd)" if len(costs) and costs["mode"].eq("train").all() else ""


def costs_table(costs: pd.DataFrame) -> Table:
    counted_as = _counted_as(costs)
    columns = [
        Column("model", lambda r: r["series"], lambda r: r["series"], numeric=False),
        Column("resolution", lambda r: "×".join(map(str, r["resolution"])), lambda r: key(r["pixels"])),
        Column("batch", lambda r: number(r["batch"], 0), lambda r: key(r["batch"])),
        Column("status", lambda r: r["status"], lambda r: r["status"], numeric=False),
        Column("params", lambda r: count(r["params"]), lambda r: key(r["params"])),
        Column(f"MACs{counted_as}", lambda r: count(r["macs"]), lambda r: key(r["macs"])),
        Column(f"FLOPs{counted_as}", lambda r: count(r["flops"]), lambda r: key(r["flops"]), secondary=True),
        Column("peak memory", lambda r: memory(r["peak_memory_bytes"]), lambda r: key(r["peak_memory_bytes"])),
        Column("latency ms (IQR)", lambda r: milliseconds(r["latency_ms"], r["latency_iqr_ms"]), lambda r: key(r["latency_ms"])),
        Column("images/s", lambda r: number(r["throughput"], 1), lambda r: key(r["throughput"]), secondary=True),
        Column("kernels", lambda r: r["kernels"], lambda r: _text_key(r["kernels"]), numeric=False, secondary=True),
        Column("note", lambda r: short_error(r["error"]), lambda r: _text_key(short_error(r["error"])), numeric=False),
    ]
    return render(costs, columns)


def memory_methods(costs: pd.DataFrame) -> list[str]:
    """The distinct ways peak memory was measured in `costs` (stated once under a table, not per row)."""
    return sorted({method for method in costs["memory_method"] if isinstance(method, str) and method})


def bench_table(benches: pd.DataFrame) -> Table:
    columns = [
        Column("record", lambda r: r["record_path"], lambda r: r["record_path"], numeric=False),
        Column("benchmark", lambda r: text(r["variant"]), lambda r: _text_key(r["variant"]), numeric=False),
        Column("device", lambda r: text(r["device"]), lambda r: _text_key(r["device"]), numeric=False),
        Column("precision", lambda r: text(r["precision"]), lambda r: _text_key(r["precision"]), numeric=False),
        Column("mode", lambda r: text(r["mode"]), lambda r: _text_key(r["mode"]), numeric=False),
        Column("status", lambda r: r["status"], lambda r: r["status"], numeric=False),
        Column("timing", lambda r: text(r["timing_method"]), lambda r: _text_key(r["timing_method"]), numeric=False),
    ]
    return render(benches, columns, model_column=None)


def problems_table(problems: list[Problem]) -> Table:
    rows = [[problem.path, problem.reason] for problem in problems]
    return Table(["file", "reason"], rows, [list(row) for row in rows], [False, False])
