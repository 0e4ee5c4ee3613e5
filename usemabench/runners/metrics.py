"""Per-case, per-class segmentation metrics: Dice, IoU, HD95 (two conventions) and normalised surface Dice (NSD).

The values come from MONAI (`compute_dice`, `compute_iou`, `compute_surface_dice`, and the surface distances
of `get_edge_surface_distance`); this module applies the benchmark's empty-mask rule around them,
explicitly, because MONAI returns NaN there and a mean over cases would silently drop those cases:

    both prediction and target empty  ->  Dice 1, IoU 1, HD95 0,                NSD 1
    exactly one of them empty         ->  Dice 0, IoU 0, HD95 = image diagonal, NSD 0

HD95 comes in the two conventions that published numbers use, from the same boundary pixels (the mask minus
its binary erosion) and Euclidean distances, both with linear interpolation between ranks:
    hd95         the larger of the two directed 95th percentiles (MONAI's `compute_hausdorff_distance`)
    hd95_pooled  the 95th percentile of both directions' distances pooled (medpy's `metric.binary.hd95`,
                 used by the TransUNet, Swin-UNet and VM-UNet evaluation scripts)
hd95_pooled is usually the smaller (not always: interpolating between ranks can lift it slightly above).
The empty-mask rule is the same for both.

Units: distances (HD95, the NSD tolerance) are in pixels unless a pixel `spacing` (row, column) is given,
in which case they are in the spacing's unit (e.g. mm). The image diagonal is sqrt(H² + W²) in the same
unit. The benchmark's 2D datasets carry no spacing, so its evaluation passes none and reports pixels.
Metrics are computed for the foreground classes 1..K-1; background is not scored.

Ignored pixels (target == IGNORE_INDEX: outside a field of view, inside an ignore mask) are set to
background in both prediction and target before scoring, so they are neither hits nor misses for Dice and
IoU, and never boundary points for HD95 and NSD; a structure cut by the ignored area gets a boundary along
the cut in both maps. "Empty" in the rule above means empty within the scored pixels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_iou, compute_surface_dice
from monai.metrics.utils import get_edge_surface_distance

from usemabench.datasets.regions import IGNORE_INDEX

METRIC_NAMES = ("dice", "iou", "hd95", "nsd", "hd95_pooled")
HD95_CONVENTIONS = {
    "hd95": "max of the two directed 95th percentiles of boundary distances (MONAI compute_hausdorff_distance)",
    "hd95_pooled": "95th percentile of both directions' boundary distances pooled (medpy metric.binary.hd95)",
}


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
    """{class index: {"dice", "iou", "hd95", "nsd", "hd95_pooled"}} for label maps `prediction` and `target` of shape (H, W)."""
    if prediction.shape != target.shape or prediction.dim() != 2:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must be equal (H, W) label maps")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (background + foreground), got {num_classes}")
    prediction, target = scored_pixels(prediction, target)
    predicted = _one_hot(prediction, num_classes)
    reference = _one_hot(target, num_classes)
    spacing_arg = list(spacing) if spacing is not None else None
    with warnings.catch_warnings():
        # MONAI warns about empty masks; the rule below handles them explicitly.
        warnings.simplefilter("ignore")
        dice = compute_dice(predicted, reference, include_background=False, ignore_empty=False)[0]
        iou = compute_iou(predicted, reference, include_background=False, ignore_empty=False)[0]
        nsd = compute_surface_dice(
            predicted, reference, [nsd_tolerance] * (num_classes - 1), include_background=False, spacing=spacing_arg
        )[0]
    diagonal = image_diagonal(*target.shape, spacing=spacing)
    scores: dict[int, dict[str, float]] = {}
    for offset, class_index in enumerate(range(1, num_classes)):
        predicted_empty = not bool(predicted[0, class_index].any())
        target_empty = not bool(reference[0, class_index].any())
        if predicted_empty and target_empty:
            scores[class_index] = {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "hd95_pooled": 0.0}
        elif predicted_empty or target_empty:
            scores[class_index] = {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "nsd": 0.0, "hd95_pooled": diagonal}
        else:
            hd95, hd95_pooled = _hd95_both(predicted[0, class_index], reference[0, class_index], spacing_arg)
            scores[class_index] = {
                "dice": float(dice[offset]),
                "iou": float(iou[offset]),
                "hd95": hd95,
                "nsd": float(nsd[offset]),
                "hd95_pooled": hd95_pooled,
            }
    return scores


def _hd95_both(predicted: torch.Tensor, reference: torch.Tensor, spacing: list[float] | None) -> tuple[float, float]:
    """(hd95, hd95_pooled) of two non-empty binary (H, W) masks, from one computation of the surface distances.

    hd95 repeats what MONAI's `compute_hausdorff_distance(percentile=95)` does with these distances."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (to_reference, to_prediction), _ = get_edge_surface_distance(
            predicted, reference, spacing=spacing, symmetric=True
        )
    directed = max(torch.quantile(distances, 0.95) for distances in (to_reference, to_prediction))
    pooled = torch.quantile(torch.cat([to_reference, to_prediction]), 0.95)
    return float(directed), float(pooled)


def scored_pixels(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`prediction` and `target` with the ignored pixels (target == IGNORE_INDEX) set to background in both."""
    ignored = target == IGNORE_INDEX
    if not bool(ignored.any()):
        return prediction, target
    return prediction.masked_fill(ignored, 0), target.masked_fill(ignored, 0)


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    labels = labels.long().cpu()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"label values {labels.unique().tolist()} are outside 0..{num_classes - 1}")
    return F.one_hot(labels, num_classes).permute(2, 0, 1).unsqueeze(0).float()


def summarize(rows: Sequence[dict], class_names: Sequence[str]) -> dict:
    """Eval-record metrics from per-case rows: per class the mean over cases, `mean` over classes.

    Rows are {"case_id", "class", *METRIC_NAMES} with `class` a foreground class name.
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
    prediction, target = scored_pixels(prediction, target)
    values = []
    for class_index in range(1, num_classes):
        predicted = prediction == class_index
        reference = target == class_index
        total = int(predicted.sum() + reference.sum())
        values.append(1.0 if total == 0 else 2.0 * int((predicted & reference).sum()) / total)
    return sum(values) / len(values)
