"""Inference at native resolution, following the dataset's evaluation policy.

The policies themselves (`resize`: resize to the training resolution and the logits back; `sliding_window`:
native-scale windows blended by MONAI) are `usemabench.datasets.evaluation.native_logits`; this module adds
what a runner needs around them: eval mode, no autograd, the device and the autocast precision. Scores are
then computed against the original, untouched mask.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from usemabench.datasets.evaluation import native_logits
from usemabench.runners.metrics import foreground_dice
from usemabench.runners.precision import autocast


def _full_resolution(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
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
    model.eval()
    with autocast(precision, device):
        # The model's logits in float32 before they are resized or blended (autocast may give bf16).
        logits = native_logits(lambda batch: _full_resolution(model(batch)).float(), image.to(device), resolution, policy)
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
