"""Per-case, per-class segmentation metrics: Dice, IoU, HD95 and normalised surface Dice (NSD).

The values come from MONAI (`compute_dice`, `compute_iou`, `compute_hausdorff_distance` with the 95th
percentile, `compute_surface_dice`); this module applies the benchmark's empty-mask rule around them,
explicitly, because MONAI returns NaN there and a mean over cases would silently drop those cases:

    both prediction and target empty  ->  Dice 1, IoU 1, HD95 0,                NSD 1
    exactly one of them empty         ->  Dice 0, IoU 0, HD95 = image diagonal, NSD 0

Units: distances (HD95, the NSD tolerance) are in pixels unless a pixel `spacing` (row, column) is given,
in which case they are in the spacing's unit (e.g. mm). The image diagonal is sqrt(H² + W²) in the same
unit. The benchmark's 2D datasets carry no spacing, so its evaluation passes none and reports pixels.
Metrics are computed for the foreground classes 1..K-1; background is not scored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

METRIC_NAMES = ("dice", "iou", "hd95", "nsd")


def image_diagonal(height: int, width: int, spacing: Sequence[float] | None = None) -> float:
    """The longest distance inside the image: the HD95 given to a structure missed or hallucinated."""
    row, column = spacing if spacing is not None else (1.0, 1.0)
    return math.hypot(height * row, width * column)


def case_metrics(
    prediction: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    nsd_tolerance: float = 2.0,
    spacing: Sequence[float] | None = None,
) -> dict[int, dict[str, float]]:
    """{class index: {"dice", "iou", "hd95", "nsd"}} for label maps `prediction` and `target` of shape (H, W)."""
    if prediction.shape != target.shape or prediction.dim() != 2:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must be equal (H, W) label maps")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (background + foreground), got {num_classes}")
    predicted = _one_hot(prediction, num_classes)
    reference = _one_hot(target, num_classes)
    spacing_arg = list(spacing) if spacing is not None else None
    with warnings.catch_warnings():
        # MONAI warns about empty masks; the rule below handles them explicitly.
        warnings.simplefilter("ignore")
        dice = compute_dice(predicted, reference, include_background=False, ignore_empty=False)[0]
        iou = compute_iou(predicted, reference, include_background=False, ignore_empty=False)[0]
        hd95 = compute_hausdorff_distance(predicted, reference, include_background=False, percentile=95, spacing=spacing_arg)[0]
        nsd = compute_surface_dice(
            predicted, reference, [nsd_tolerance] * (num_classes - 1), include_background=False, spacing=spacing_arg
        )[0]
    diagonal = image_diagonal(*target.shape, spacing=spacing)
    scores: dict[int, dict[str, float]] = {}
    for offset, class_index in enumerate(range(1, num_classes)):
        predicted_empty = not bool(predicted[0, class_index].any())
        target_empty = not bool(reference[0, class_index].any())
        if predicted_empty and target_empty:
            scores[class_index] = {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}
        elif predicted_empty or target_empty:
            scores[class_index] = {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "nsd": 0.0}
        else:
            scores[class_index] = {
                "dice": float(dice[offset]),
                "iou": float(iou[offset]),
                "hd95": float(hd95[offset]),
                "nsd": float(nsd[offset]),
            }
    return scores


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    labels = labels.long().cpu()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"label values {labels.unique().tolist()} are outside 0..{num_classes - 1}")
    return F.one_hot(labels, num_classes).permute(2, 0, 1).unsqueeze(0).float()


def summarize(rows: Sequence[dict], class_names: Sequence[str]) -> dict:
    """Eval-record metrics from per-case rows: per class the mean over cases, `mean` over classes.

    Rows are {"case_id", "class", "dice", "iou", "hd95", "nsd"} with `class` a foreground class name.
    """
    if not rows:
        raise ValueError("no cases were evaluated")
    metrics: dict = {}
    for name in METRIC_NAMES:
        per_class = {}
        for class_name in class_names:
            values = [row[name] for row in rows if row["class"] == class_name]
            if values:
                per_class[class_name] = sum(values) / len(values)
        metrics[name] = {"mean": sum(per_class.values()) / len(per_class), "per_class": per_class}
    metrics["num_cases"] = len({row["case_id"] for row in rows})
    return metrics


def foreground_dice(prediction: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean Dice over foreground classes with the empty-mask rule: the fast validation score of training."""
    values = []
    for class_index in range(1, num_classes):
        predicted = prediction == class_index
        reference = target == class_index
        total = int(predicted.sum() + reference.sum())
        values.append(1.0 if total == 0 else 2.0 * int((predicted & reference).sum()) / total)
    return sum(values) / len(values)
