"""The one place that maps record fields to table columns.

Records are written by several runners (train, evaluate, profile); their free-form `metrics` and `cost`
dicts may gain or lose optional fields. Every other leaderboard and report module reads records only
through `run_fields`, `eval_fields`, `train_fields`, `profile_fields` and `bench_fields` (and the
per-case and bench-point names below), so adapting to a changed record means editing this file. Each column lists candidate paths, tried in order; a missing field is None.
"""

from __future__ import annotations

import math
from typing import Any

FieldPath = tuple[str, ...]

# Identity of a run, shared by every kind of record.
RUN_COLUMNS: dict[str, tuple[FieldPath, ...]] = {
    "kind": (("kind",),),
    "status": (("status",),),
    "model": (("model", "name"),),
    "dataset": (("dataset", "name"),),
    "protocol": (("protocol", "name"),),
    # What makes runs comparable beyond their names: runs are pooled only when these agree.
    "protocol_hash": (("protocol", "hash"),),
    "split_hash": (("dataset", "split_hash"),),
    "data_hash": (("dataset", "data_hash"),),  # content of the data; records before it have none
    "model_config_hash": (("model", "config_hash"),),
    "seed": (("seed",),),
    "device": (("environment", "device"),),
    "precision": (("environment", "precision"),),
    "error": (("error",),),
}

# Evaluation records: means over test cases, as the evaluator wrote them.
EVAL_COLUMNS: dict[str, tuple[FieldPath, ...]] = {
    "dice": (("metrics", "dice", "mean"), ("metrics", "dice")),
    "iou": (("metrics", "iou", "mean"), ("metrics", "iou")),
    "hd95": (("metrics", "hd95", "mean"), ("metrics", "hd95")),
    # medpy's pooled HD95 convention; absent from records written before it was added.
    "hd95_pooled": (("metrics", "hd95_pooled", "mean"), ("metrics", "hd95_pooled")),
    "nsd": (("metrics", "nsd", "mean"), ("metrics", "nsd")),
    "per_case_file": (("files", "per_case"),),
    "predictions_dir": (("files", "predictions"),),
    "images_dir": (("files", "images"),),
    "labels_dir": (("files", "labels"),),
}
EVAL_PER_CLASS_PATH: FieldPath = ("metrics", "dice", "per_class")

# Training records: what the run itself measured.
TRAIN_COLUMNS: dict[str, tuple[FieldPath, ...]] = {
    "params": (("cost", "params", "total"), ("cost", "params")),
    "peak_memory_bytes": (("cost", "peak_memory_bytes"),),
    "train_seconds": (("cost", "train_seconds"), ("cost", "wall_seconds")),
}

# Profile records: one (model, resolution, device, precision, mode) each.
PROFILE_COLUMNS: dict[str, tuple[FieldPath, ...]] = {
    "mode": (("cost", "mode"),),
    "variant": (("metrics", "variant"),),  # e.g. "sdpa-math": the same model timed another way
    "batch": (("cost", "batch"), ("cost", "batch_size")),
    "params": (("cost", "params", "total"), ("cost", "params")),
    "macs": (("cost", "macs"),),
    "flops": (("cost", "flops"),),
    "peak_memory_bytes": (("cost", "peak_memory_bytes"),),
    "memory_method": (("cost", "memory_method"),),
    "latency_ms": (("cost", "latency_ms", "median"), ("cost", "latency_ms")),
    "latency_iqr_ms": (("cost", "latency_ms", "iqr"),),
    "throughput": (("cost", "throughput"),),
}

PROFILE_BACKENDS_PATH: FieldPath = ("environment", "backends")

# Benchmark records (benchmarks/*.py): free-form results, read by usemabench.reports.benchmarks.
BENCH_COLUMNS: dict[str, tuple[FieldPath, ...]] = {
    "variant": (("metrics", "variant"),),
    "mode": (("cost", "mode"),),
    "timing_method": (("cost", "timing_method"),),
    "memory_method": (("cost", "memory_method"),),
}
BENCH_RESULTS_PATH: FieldPath = ("metrics", "results")
BENCH_SIZE_KEYS = ("tokens", "length")  # else the product of "grid"
BENCH_TIME_PATH: FieldPath = ("time_ms", "median")
BENCH_MEMORY_KEY = "peak_memory_mb"

# Per-case CSV written beside eval records (path in files["per_case"], relative to the record).
PER_CASE_COLUMNS = ("case_id", "class", "dice", "iou", "hd95", "nsd")
PER_CASE_REQUIRED = ("case_id", "class", "dice")
# Rows of the per-case CSV that summarise classes rather than being one class.
PER_CASE_SUMMARY_CLASSES = frozenset({"mean", "all", "average"})


def lookup(record: dict, candidates: tuple[FieldPath, ...]) -> Any:
    """The value at the first candidate path present in `record` whose value is not a dict; else None."""
    for path in candidates:
        value: Any = record
        for key in path:
            if not isinstance(value, dict) or key not in value:
                value = None
                break
            value = value[key]
        if value is not None and not isinstance(value, dict):
            return value
    return None


def _number(value: Any) -> float | None:
    """A finite-or-NaN float, or None for anything that is not a number (strings, lists, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _columns(record: dict, columns: dict[str, tuple[FieldPath, ...]], numeric: frozenset[str]) -> dict[str, Any]:
    row = {}
    for name, candidates in columns.items():
        value = lookup(record, candidates)
        row[name] = _number(value) if name in numeric else value
    return row


def resolution_of(record: dict) -> tuple[int, int] | None:
    """(height, width) of a record, or None when absent or malformed."""
    value = record.get("resolution")
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(side, int) for side in value):
        return int(value[0]), int(value[1])
    return None


def run_fields(record: dict) -> dict[str, Any]:
    row = _columns(record, RUN_COLUMNS, frozenset())
    fold = _mapping_at(record, ("dataset",)).get("fold")
    if isinstance(fold, int) and not isinstance(fold, bool) and row["dataset"] is not None:  # each fold of a cross-validation is a board of its own
        row["dataset"] = f"{row['dataset']}-fold{fold}"
    if not isinstance(row["seed"], int) or isinstance(row["seed"], bool):
        row["seed"] = None
    row["resolution"] = resolution_of(record)
    row["record_path"] = record.get("_path")
    return row


def eval_fields(record: dict) -> dict[str, Any]:
    row = run_fields(record)
    row.update(_columns(record, EVAL_COLUMNS, frozenset({"dice", "iou", "hd95", "nsd", "hd95_pooled"})))
    row["dice_per_class"] = _per_class(record)
    return row


def _mapping_at(record: dict, path: FieldPath) -> dict:
    """The dict at `path` in `record`, or {} when any step is missing or not a dict."""
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def _per_class(record: dict) -> dict[str, float]:
    values = _mapping_at(record, EVAL_PER_CLASS_PATH)
    return {str(name): number for name, raw in values.items() if (number := _number(raw)) is not None}


def train_fields(record: dict) -> dict[str, Any]:
    row = run_fields(record)
    row.update(_columns(record, TRAIN_COLUMNS, frozenset(TRAIN_COLUMNS)))
    return row


def bench_fields(record: dict) -> dict[str, Any]:
    row = run_fields(record)
    row.update(_columns(record, BENCH_COLUMNS, frozenset()))
    row["results"] = _mapping_at(record, BENCH_RESULTS_PATH)
    row["unavailable"] = _mapping_at(record, ("metrics", "unavailable"))  # contenders that could not run at all
    return row


def kernels_label(backends: dict) -> str:
    """The kernels that ran, e.g. "sdpa: cudnn; sema: torch", so a slow fallback is visible in the tables."""
    parts = []
    for op, ran in sorted(backends.items()):
        if op.endswith("_requested"):  # what was asked for, not what ran; the variant names it
            continue
        names = ran if isinstance(ran, list) else [ran]
        parts.append(f"{op}: {', '.join(map(str, names))}")
    return "; ".join(parts)


def profile_fields(record: dict) -> dict[str, Any]:
    row = run_fields(record)
    numeric = frozenset(PROFILE_COLUMNS) - {"mode", "variant", "memory_method"}
    row.update(_columns(record, PROFILE_COLUMNS, numeric))
    row["kernels"] = kernels_label(_mapping_at(record, PROFILE_BACKENDS_PATH))
    if row["batch"] is not None:
        row["batch"] = int(row["batch"]) if math.isfinite(row["batch"]) else None
    return row
