"""Inference at native resolution, following the dataset's evaluation policy.

`resize`: the image is resized to the training resolution, the logits resized back to the image's own
size (bilinear), then argmax. `sliding_window`: native-scale patches of the training resolution, 50%
overlap, Gaussian blending (MONAI's `sliding_window_inference`). Either way, scores are computed against
the original, untouched mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch import nn
from torch.utils.data import Dataset

from usemabench.runners.metrics import foreground_dice
from usemabench.runners.precision import autocast

EVAL_POLICIES = ("resize", "sliding_window")


def _forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    output = model(images)
    # A model that keeps deep-supervision outputs in eval mode: the first is full resolution.
    return output[0] if isinstance(output, (list, tuple)) else output


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    image: torch.Tensor,
    resolution: tuple[int, int],
    policy: str,
    device: torch.device,
    precision: str = "fp32",
) -> torch.Tensor:
    """Logits (K, H, W), float32 on the CPU, for one image (C, H, W) at the image's own size."""
    if policy not in EVAL_POLICIES:
        raise ValueError(f"evaluation policy {policy!r} is not one of {EVAL_POLICIES}")
    model.eval()
    batch = image.unsqueeze(0).to(device)
    native_size = tuple(image.shape[-2:])
    with autocast(precision, device):
        if policy == "resize":
            resized = F.interpolate(batch, size=resolution, mode="bilinear", align_corners=False, antialias=True)
            logits = _forward(model, resized).float()
            logits = F.interpolate(logits, size=native_size, mode="bilinear", align_corners=False)
        else:
            logits = sliding_window_inference(
                batch, roi_size=resolution, sw_batch_size=4, predictor=lambda patch: _forward(model, patch).float(),
                overlap=0.5, mode="gaussian",
            )
    return logits[0].float().cpu()


def predict_labels(
    model: nn.Module,
    image: torch.Tensor,
    resolution: tuple[int, int],
    policy: str,
    device: torch.device,
    precision: str = "fp32",
) -> torch.Tensor:
    """Label map (H, W) int64 at the image's own size."""
    return predict_logits(model, image, resolution, policy, device, precision).argmax(0)


def validation_dice(
    model: nn.Module,
    val_set: Dataset,
    resolution: tuple[int, int],
    policy: str,
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
) -> float:
    """Mean foreground Dice over the validation cases at native resolution (the per-epoch score)."""
    scores = []
    for index in range(len(val_set)):  # type: ignore[arg-type]
        case = val_set[index]
        prediction = predict_labels(model, case["image"], resolution, policy, device, precision)
        scores.append(foreground_dice(prediction, case["mask"], num_classes))
    if not scores:
        raise ValueError("the validation split is empty")
    return sum(scores) / len(scores)
