"""Intensity normalisation and the training / evaluation transforms of image and mask together.

Order in the loader: file -> float image in [0, 1] (integers scaled by their range) -> the spec's
normalisation on the full native image -> transform. Geometric transforms act on `tv_tensors.Image`
and `tv_tensors.Mask` together (torchvision.transforms.v2 always resamples masks with nearest
neighbour); intensity transforms touch the image only.

Training geometry follows the dataset's evaluation policy, so the model trains on what it is shown
at test time:
    resize           whole frames resized to the resolution (random resized crop when scaling is on)
    letterbox        whole frames with their aspect ratio kept: the long side resized to the resolution, the
                     short side padded (centred; when scaling is on, zoomed and placed at random). Padding is
                     0 in the normalised image (the mean under zscore, the minimum under minmax) and
                     IGNORE_INDEX in the mask, so padded pixels never count in the loss; rotation corners too
    sliding_window   native-scale patches: a random window, rotated and zoomed about its centre (zero-
                     padded where it reaches past the image)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.regions import IGNORE_INDEX
from usemabench.datasets.spec import DatasetSpec

AUGMENTATION_PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "light": {"hflip": 0.5, "vflip": 0.5},
    "default": {
        "hflip": 0.5,
        "vflip": 0.5,
        "rotate_degrees": 15.0,
        "scale": (0.75, 1.25),
        "contrast": 0.2,
        "brightness": 0.1,
        "noise_std": 0.05,
        "noise_prob": 0.15,
        "blur_sigma": (0.5, 1.0),
        "blur_prob": 0.1,
    },
    "strong": {
        "hflip": 0.5,
        "vflip": 0.5,
        "rotate_degrees": 30.0,
        "scale": (0.6, 1.5),
        "contrast": 0.3,
        "brightness": 0.2,
        "noise_std": 0.1,
        "noise_prob": 0.3,
        "blur_sigma": (0.5, 1.5),
        "blur_prob": 0.2,
    },
}
# The keys a custom augmentation dict may set ("scale" is a zoom factor range: > 1 zooms in).
AUGMENTATION_KEYS = (
    "hflip", "vflip", "rotate_degrees", "scale", "contrast", "brightness", "noise_std", "noise_prob", "blur_sigma", "blur_prob",
)  # fmt: skip


def normalize_image(image: torch.Tensor, normalization: str | Mapping) -> torch.Tensor:
    """Apply a spec's normalisation to a (C, H, W) float image in [0, 1] (integer files) or raw floats."""
    if isinstance(normalization, Mapping):
        mean = torch.as_tensor(normalization["mean"], dtype=image.dtype).reshape(-1, 1, 1)
        std = torch.as_tensor(normalization["std"], dtype=image.dtype).reshape(-1, 1, 1)
        return (image - mean) / std
    if normalization == "none":
        return image
    flat = image.reshape(image.shape[0], -1)
    if normalization == "zscore":
        mean, std = flat.mean(dim=1), flat.std(dim=1, correction=0)
        return (image - mean[:, None, None]) / std.clamp_min(1e-6)[:, None, None]
    if normalization == "minmax":
        low, high = flat.min(dim=1).values, flat.max(dim=1).values
        return (image - low[:, None, None]) / (high - low).clamp_min(1e-6)[:, None, None]
    raise DatasetError(f"unknown normalization {normalization!r}")


def resolve_augmentation(augmentation: str | Mapping[str, Any]) -> dict[str, Any]:
    """A preset name, or a dict of overrides on the preset named by its 'preset' key (default 'default')."""
    if isinstance(augmentation, str):
        if augmentation not in AUGMENTATION_PRESETS:
            raise DatasetError(f"unknown augmentation preset {augmentation!r}; presets: {', '.join(AUGMENTATION_PRESETS)}")
        return dict(AUGMENTATION_PRESETS[augmentation])
    overrides = dict(augmentation)
    base = resolve_augmentation(overrides.pop("preset", "default"))
    unknown = sorted(set(overrides) - set(AUGMENTATION_KEYS))
    if unknown:
        raise DatasetError(f"unknown augmentation key(s) {', '.join(unknown)}; allowed: {', '.join(AUGMENTATION_KEYS)}")
    return {**base, **overrides}


class RandomContrastBrightness(v2.Transform):
    """Image only: (x - mean) * contrast + mean + brightness, factors drawn per call from torch's RNG.

    Written for normalised images (torchvision's ColorJitter clamps to [0, 1], which would cut z-scores).
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, contrast: float, brightness: float) -> None:
        super().__init__()
        self.contrast, self.brightness = contrast, brightness

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        factor = 1.0 + (2 * torch.rand(()).item() - 1) * self.contrast
        shift = (2 * torch.rand(()).item() - 1) * self.brightness
        return {"factor": factor, "shift": shift}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        mean = inpt.mean(dim=(-2, -1), keepdim=True)
        return tv_tensors.wrap((inpt - mean) * params["factor"] + mean + params["shift"], like=inpt)


def resolution_size(resolution: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a resolution given as one side or a pair: one reading for training and evaluation."""
    size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if len(size) != 2 or min(size) < 1:
        raise DatasetError(f"resolution must be a positive int or (height, width), got {resolution!r}")
    return int(size[0]), int(size[1])


# Letterbox padding: 0 in the normalised image, ignored in the mask.
LETTERBOX_FILL = {tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX}


def letterbox_box(native: tuple[int, int], size: tuple[int, int], zoom: float = 1.0) -> tuple[int, int]:
    """(height, width) of a native (H, W) frame resized by `zoom` times the factor that fits it inside `size`."""
    scale = zoom * min(size[0] / native[0], size[1] / native[1])
    return max(1, round(native[0] * scale)), max(1, round(native[1] * scale))


def letterbox_offsets(resized: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of a centred resized frame inside `size` (negative where it is larger: a centred crop)."""
    return (size[0] - resized[0]) // 2, (size[1] - resized[1]) // 2


class Letterbox(v2.Transform):
    """Resize keeping the aspect ratio so the frame fits `size`, then pad to `size` (LETTERBOX_FILL).

    With a `zoom` range the fitted frame is scaled by a factor drawn from it (> 1 zooms in) and placed at a
    random position: padded where it is smaller than `size`, cropped where it is larger. Without, it is
    centred, exactly as evaluation places it (`datasets.evaluation`).
    """

    def __init__(self, size: tuple[int, int], zoom: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.size, self.zoom = size, zoom

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        native = v2.functional.get_size(next(i for i in flat_inputs if isinstance(i, (tv_tensors.Image, tv_tensors.Mask))))
        factor = 1.0 if self.zoom is None else self.zoom[0] + torch.rand(()).item() * (self.zoom[1] - self.zoom[0])
        resized = letterbox_box(tuple(native), self.size, factor)
        if self.zoom is None:
            top, left = letterbox_offsets(resized, self.size)
        else:
            top, left = (self._place(side, target) for side, target in zip(resized, self.size))
        return {"resized": resized, "top": top, "left": left}

    @staticmethod
    def _place(side: int, target: int) -> int:
        low, high = sorted((0, target - side))
        return low + int(torch.randint(high - low + 1, ()).item())

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        resized = v2.functional.resize(inpt, list(params["resized"]), antialias=True)  # masks: nearest
        height, width = params["resized"]
        top, left = params["top"], params["left"]
        fill = LETTERBOX_FILL[tv_tensors.Mask if isinstance(inpt, tv_tensors.Mask) else tv_tensors.Image]
        padding = [max(left, 0), max(top, 0), max(self.size[1] - width - left, 0), max(self.size[0] - height - top, 0)]
        padded = v2.functional.pad(resized, padding, fill=fill)
        return v2.functional.crop(padded, max(-top, 0), max(-left, 0), self.size[0], self.size[1])


def training_transform(
    spec: DatasetSpec, resolution: int | tuple[int, int], augmentation: str | Mapping[str, Any] = "default"
) -> v2.Compose:
    """The training transform of `spec` at `resolution`: geometry per the eval policy, flips, intensity.

    Called as `image, mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))` (the loader does it).
    """
    size = resolution_size(resolution)
    config = resolve_augmentation(augmentation)
    degrees = float(config.get("rotate_degrees", 0.0))
    zoom = config.get("scale")
    steps: list[v2.Transform] = []
    if spec.eval_policy == "resize":
        if zoom:
            # a zoom factor z shows 1/z^2 of the frame; zooming out past the whole frame is not possible here
            area = (1.0 / zoom[1] ** 2, min(1.0, 1.0 / zoom[0] ** 2))
            steps.append(v2.RandomResizedCrop(size, scale=area, ratio=(3 / 4, 4 / 3), antialias=True))
        else:
            steps.append(v2.Resize(size, antialias=True))
        if degrees:  # after resizing: resampling R x R pixels, not the (often much larger) native frame
            steps.append(v2.RandomRotation(degrees, interpolation=InterpolationMode.BILINEAR))
    elif spec.eval_policy == "letterbox":
        steps.append(Letterbox(size, tuple(zoom) if zoom else None))
        if degrees:
            steps.append(v2.RandomRotation(degrees, interpolation=InterpolationMode.BILINEAR, fill=LETTERBOX_FILL))
    elif degrees or zoom:
        # crop just the neighbourhood a rotated, zoomed R x R window can reach, transform it, keep its centre:
        # the same result as transforming the whole image first, at a cost independent of the native size
        angle = math.radians(min(degrees, 45.0))
        reach = (math.cos(angle) + math.sin(angle)) / (min(zoom) if zoom else 1.0)
        steps.append(v2.RandomCrop(tuple(math.ceil(side * reach) + 2 for side in size), pad_if_needed=True))
        steps.append(v2.RandomAffine(degrees=degrees, scale=tuple(zoom) if zoom else None, interpolation=InterpolationMode.BILINEAR))
        steps.append(v2.CenterCrop(size))
    else:
        steps.append(v2.RandomCrop(size, pad_if_needed=True))
    if config.get("hflip"):
        steps.append(v2.RandomHorizontalFlip(config["hflip"]))
    if config.get("vflip"):
        steps.append(v2.RandomVerticalFlip(config["vflip"]))
    if config.get("contrast") or config.get("brightness"):
        steps.append(RandomContrastBrightness(config.get("contrast", 0.0), config.get("brightness", 0.0)))
    if config.get("noise_std") and config.get("noise_prob"):
        steps.append(v2.RandomApply([v2.GaussianNoise(sigma=config["noise_std"], clip=False)], p=config["noise_prob"]))
    if config.get("blur_sigma") and config.get("blur_prob"):
        sigma = tuple(config["blur_sigma"])
        kernel = 2 * int(round(3 * max(sigma))) + 1
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=sigma)], p=config["blur_prob"]))
    return v2.Compose(steps)


def eval_transform(spec: DatasetSpec) -> v2.Transform:
    """Evaluation reads every case at native size, untouched: the policy is applied to the model's input
    and output instead (`usemabench.datasets.evaluation.native_logits`, called by
    `usemabench.runners.inference.predict_logits`), so metrics are computed on the original mask pixels."""
    return v2.Identity()
