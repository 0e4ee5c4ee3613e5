"""Inference at native resolution, following the dataset's evaluation policy.

The policies themselves (`resize`: resize to the training resolution and the logits back; `sliding_window`:
native-scale windows blended by MONAI) live in `usemabench.datasets.evaluation`; this module adds what a
runner needs around them: eval mode, no autograd, the device and the autocast precision. Scores are then
computed against the original, untouched mask.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from usemabench.datasets.evaluation import prepare_eval_input, restore_prediction, sliding_window_logits
from usemabench.datasets.spec import EVAL_POLICIES
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
    if policy not in EVAL_POLICIES:
        raise ValueError(f"evaluation policy {policy!r} is not one of {EVAL_POLICIES}")
    model.eval()
    batch = image.unsqueeze(0).to(device)
    with autocast(precision, device):
        if policy == "sliding_window":
            logits = sliding_window_logits(lambda patch: _full_resolution(model(patch)).float(), batch, resolution)
        else:
            logits = _full_resolution(model(prepare_eval_input(batch, resolution))).float()
            logits = restore_prediction(logits, tuple(image.shape[-2:]))
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
