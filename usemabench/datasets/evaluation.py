"""The evaluation policy: every metric is computed at each case's native resolution.

A model trained at resolution R sees at test time either
    resize           the whole image resized to R x R (bilinear, antialiased); its logits are resized back
                     to the native size (bilinear) before the argmax -- `prepare_eval_input` and
                     `restore_prediction`;
    letterbox        the image resized keeping its aspect ratio (long side to R, bilinear, antialiased) and
                     centred on an R x R canvas of zeros (the normalised mean); the logits of the frame are
                     cropped out and resized back (bilinear) -- `letterbox_logits`; or
    sliding_window   native-scale R x R windows with 50 % overlap, blended with Gaussian weights (MONAI's
                     `sliding_window_inference`; images smaller than R are zero-padded, i.e. padded with
                     the normalised mean, and cropped back).
The dataset's spec names its policy (`DatasetSpec.eval_policy`); `native_logits` applies a policy,
`predict_native` the spec's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from usemabench.datasets.spec import EVAL_POLICIES, DatasetSpec
from usemabench.datasets.transforms import letterbox_box, letterbox_offsets, resolution_size

Model = Callable[[torch.Tensor], torch.Tensor | list[torch.Tensor]]


def _batched(image: torch.Tensor) -> torch.Tensor:
    if image.ndim == 3:
        return image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"expected an image (C, H, W) or batch (B, C, H, W), got shape {tuple(image.shape)}")
    return image


def prepare_eval_input(image: torch.Tensor, resolution: int | tuple[int, int]) -> torch.Tensor:
    """(B, C, R, R) model input from a native-size image (C, H, W) or batch (B, C, H, W)."""
    image = _batched(image)
    if tuple(image.shape[-2:]) == resolution_size(resolution):
        return image
    return F.interpolate(image, size=resolution_size(resolution), mode="bilinear", align_corners=False, antialias=True)


def restore_prediction(logits: torch.Tensor, native_size: tuple[int, int]) -> torch.Tensor:
    """Logits (B, K, r, r) resized back to the native (H, W) with bilinear interpolation (argmax after)."""
    if tuple(logits.shape[-2:]) == tuple(native_size):
        return logits
    return F.interpolate(logits, size=tuple(native_size), mode="bilinear", align_corners=False)


def letterbox_input(image: torch.Tensor, resolution: int | tuple[int, int]) -> torch.Tensor:
    """(B, C, R, R) model input: the native image (C, H, W) or batch resized to fit, centred on zeros."""
    image, size = _batched(image), resolution_size(resolution)
    resized = letterbox_box(tuple(image.shape[-2:]), size)
    top, left = letterbox_offsets(resized, size)
    if resized != tuple(image.shape[-2:]):
        image = F.interpolate(image, size=resized, mode="bilinear", align_corners=False, antialias=True)
    return F.pad(image, (left, size[1] - resized[1] - left, top, size[0] - resized[0] - top), value=0.0)


def restore_letterbox(logits: torch.Tensor, native_size: tuple[int, int]) -> torch.Tensor:
    """Logits (B, K, R, R) of a letterboxed input: the frame cropped out, resized back to the native (H, W)."""
    size = tuple(logits.shape[-2:])
    resized = letterbox_box(tuple(native_size), size)
    top, left = letterbox_offsets(resized, size)
    return restore_prediction(logits[..., top : top + resized[0], left : left + resized[1]], native_size)


def _logits(model: Model, batch: torch.Tensor) -> torch.Tensor:
    output = model(batch)
    return output[0] if isinstance(output, (list, tuple)) else output


def sliding_window_logits(
    model: Model, image: torch.Tensor, window: int | tuple[int, int], overlap: float = 0.5, batch_size: int = 4
) -> torch.Tensor:
    """Native-size logits (B, K, H, W) from overlapping windows blended with Gaussian weights."""
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(
        _batched(image),
        roi_size=resolution_size(window),
        sw_batch_size=batch_size,
        predictor=lambda windows: _logits(model, windows),
        overlap=overlap,
        mode="gaussian",
        padding_mode="constant",
        cval=0.0,
    )


def native_logits(
    model: Model, image: torch.Tensor, resolution: int | tuple[int, int], policy: str, overlap: float = 0.5
) -> torch.Tensor:
    """Logits (B, K, H, W) at the native size of `image` under evaluation policy `policy` (one of EVAL_POLICIES)."""
    if policy not in EVAL_POLICIES:
        raise ValueError(f"evaluation policy {policy!r} is not one of {EVAL_POLICIES}")
    image = _batched(image)
    if policy == "sliding_window":
        return sliding_window_logits(model, image, resolution, overlap)
    if policy == "letterbox":
        return restore_letterbox(_logits(model, letterbox_input(image, resolution)), tuple(image.shape[-2:]))
    return restore_prediction(_logits(model, prepare_eval_input(image, resolution)), tuple(image.shape[-2:]))


@torch.no_grad()
def predict_native(
    model: Model, image: torch.Tensor, spec: DatasetSpec, resolution: int | tuple[int, int], overlap: float = 0.5
) -> torch.Tensor:
    """Logits (B, K, H, W) at the native size of `image` under the spec's evaluation policy."""
    return native_logits(model, image, resolution, spec.eval_policy, overlap)
