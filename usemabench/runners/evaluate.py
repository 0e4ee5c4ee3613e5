"""Evaluation: per-case, per-class metrics on a test split at native resolution, and the eval record.

Beside the record (same file stem) go the per-case CSV (`<stem>.cases.csv`: case_id, class, dice, iou,
hd95, nsd, hd95_pooled) and, for the first few cases by id, PNGs for the qualitative panel: the prediction and the
ground truth as label maps (pixel value = class index; ignored pixels shown as background) and the image
scaled to 0-255. Their paths,
relative to the record's folder, are the record's `files`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from usemabench.core.io import atomic_write_bytes, atomic_write_text, safe_file_stem
from usemabench.core.records import make_record, record_filename, write_record
from usemabench.runners.inference import predict_labels
from usemabench.runners.metrics import HD95_CONVENTIONS, METRIC_NAMES, case_metrics, summarize

CASE_COLUMNS = ("case_id", "class", *METRIC_NAMES)
EMPTY_MASK_RULE = (
    "both empty: dice 1, iou 1, hd95 0, nsd 1; one empty: dice 0, iou 0, hd95 = image diagonal, nsd 0"
    " (hd95_pooled as hd95)"
)


@dataclass(frozen=True)
class Evaluation:
    rows: list[dict]
    metrics: dict
    saved: dict[str, list[tuple[str, np.ndarray]]]  # "images" | "labels" | "predictions" -> (case_id, array)


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    class_names: Sequence[str],
    resolution: tuple[int, int],
    policy: str,
    device: torch.device,
    precision: str = "fp32",
    nsd_tolerance: float = 2.0,
    saved_cases: int = 4,
    progress: bool = True,
) -> Evaluation:
    """Score every case of `dataset` (items at native size) on the foreground classes of `class_names`."""
    rows: list[dict] = []
    saved: dict[str, list[tuple[str, np.ndarray]]] = {"images": [], "labels": [], "predictions": []}
    order = sorted(range(len(dataset)), key=lambda index: _case_id(dataset, index))  # type: ignore[arg-type]
    for rank, index in enumerate(tqdm(order, desc="evaluate", disable=not progress, leave=False)):
        case = dataset[index]
        prediction = predict_labels(model, case["image"], resolution, policy, device, precision)
        scores = case_metrics(prediction, case["mask"], len(class_names), nsd_tolerance)
        for class_index, values in scores.items():
            rows.append({"case_id": case["case_id"], "class": class_names[class_index], **values})
        if rank < saved_cases:
            saved["images"].append((case["case_id"], display_image(case["image"])))
            saved["labels"].append((case["case_id"], case["mask"].clamp_min(0).numpy().astype(np.uint8)))
            saved["predictions"].append((case["case_id"], prediction.numpy().astype(np.uint8)))
    metrics = summarize(rows, class_names[1:])
    metrics["settings"] = {
        "classes_scored": list(class_names[1:]),
        "eval_policy": policy,
        "native_resolution": True,
        "nsd_tolerance": nsd_tolerance,
        "distance_unit": "px",
        "hd_percentile": 95,
        "hd95_conventions": dict(HD95_CONVENTIONS),
        "empty_mask_rule": EMPTY_MASK_RULE,
        # pixels left out of every metric (and of the loss), e.g. "pixels outside the fov/ mask"; see runners.metrics
        "ignored_pixels": getattr(dataset, "ignored_pixels", "none"),
        "library": "monai.metrics (compute_dice, compute_iou, compute_surface_dice, utils.get_edge_surface_distance)",
    }
    return Evaluation(rows, metrics, saved)


def _case_id(dataset: Dataset, index: int) -> str:
    # SegmentationDataset knows its ids without loading images; any other dataset is read.
    case_ids = getattr(dataset, "case_ids", None)
    return case_ids[index] if case_ids is not None else dataset[index]["case_id"]


def display_image(image: torch.Tensor) -> np.ndarray:
    """A normalised (C, H, W) image as uint8 (H, W) or (H, W, 3), min-max scaled for viewing."""
    array = image.float().numpy()
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    scaled = (scaled * 255).round().astype(np.uint8)
    return scaled[0] if scaled.shape[0] != 3 else scaled.transpose(1, 2, 0)


def cases_csv(rows: Sequence[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.10g}" if isinstance(value, float) else value) for key, value in row.items()})
    return buffer.getvalue()


def write_png(path: Path, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def write_eval_record(evaluation: Evaluation, records_dir: str | Path, **record_fields) -> Path:
    """Write the per-case CSV and PNGs beside the eval record, then the record; returns the record's path."""
    records_dir = Path(records_dir)
    record = make_record("eval", metrics=evaluation.metrics, **record_fields)
    filename = record_filename(record)
    stem = filename.removesuffix(".json")
    files = {"per_case": f"{stem}.cases.csv"}
    atomic_write_text(records_dir / files["per_case"], cases_csv(evaluation.rows))
    for kind, items in evaluation.saved.items():
        if not items:
            continue
        files[kind] = f"{stem}.{kind}"
        for case_id, array in items:
            write_png(records_dir / files[kind] / f"{safe_file_stem(case_id)}.png", array)
    record["files"] = {**record.get("files", {}), **files}
    return write_record(record, records_dir, filename)
