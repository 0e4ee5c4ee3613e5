"""Segment a folder of images with trained weights: one mask PNG per image (and optional overlays).

Masks are label maps (pixel value = class index, 0 = background), at each image's own size. Images go
through the same steps as in training: channels matched to the model, the training dataset's intensity
normalisation, and its evaluation policy at the training resolution. Checkpoints written by
`usemabench train` carry those settings; Hub weights do not, so they come from the options
(`--resolution`, `--normalization`, `--eval-policy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from usemabench.datasets.imaging import image_to_float, is_image_file, read_image
from usemabench.datasets.transforms import normalize_image
from usemabench.runners.errors import UsageError
from usemabench.runners.evaluate import display_image, write_png
from usemabench.runners.inference import predict_labels, predict_logits
from usemabench.runners.precision import resolve_device
from usemabench.runners.weights import load_weights

# Overlay colours per class (class 0 is not drawn); cycled for more classes.
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)], dtype=np.float32)
OVERLAY_ALPHA = 0.45


@dataclass(frozen=True)
class PredictSettings:
    resolution: tuple[int, int]
    normalization: str | dict
    eval_policy: str


def resolve_settings(stored: dict, resolution: int | None, normalization: str | None, eval_policy: str | None) -> PredictSettings:
    """Options override what the checkpoint stored; without either, a clear error (resolution) or a default."""
    if resolution is not None:
        size = (resolution, resolution)
    elif "resolution" in stored:
        size = tuple(stored["resolution"])
    else:
        raise UsageError("these weights do not record their training resolution; pass --resolution")
    return PredictSettings(
        resolution=size,  # type: ignore[arg-type]
        normalization=normalization or stored.get("normalization", "zscore"),
        eval_policy=eval_policy or stored.get("eval_policy", "resize"),
    )


def predict_folder(
    model_name: str | None,
    weights: str,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    overlay: bool = False,
    resolution: int | None = None,
    normalization: str | None = None,
    eval_policy: str | None = None,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write `<output_dir>/<image stem>.png` for every image in `input_dir`; returns the mask paths.

    Existing files are replaced only with `overwrite`; `output_dir` may never be `input_dir`.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist")
    images = sorted(path for path in input_dir.iterdir() if is_image_file(path))
    if not images:
        raise FileNotFoundError(f"no images (png, jpg, tif, bmp, gif) in {input_dir}")
    stems = [path.stem for path in images]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise UsageError(f"{input_dir}: several images share the name {duplicates[0]!r}; their masks would overwrite each other")
    suffixes = (".png", "_overlay.png") if overlay else (".png",)
    check_output_folder(input_dir, output_dir, [output_dir / f"{stem}{suffix}" for stem in stems for suffix in suffixes], overwrite)
    loaded = load_weights(weights, model_name)
    settings = resolve_settings(loaded.preprocessing, resolution, normalization, eval_policy)
    torch_device = resolve_device(device)
    model = loaded.model.to(torch_device)
    in_channels = model.usemabench_spec["in_channels"]
    if resolution is not None:
        check_resolution(model, settings, torch_device)
    written = []
    for path in tqdm(images, desc="predict", disable=not progress):
        raw = read_image(path)
        image = normalize_image(torch.from_numpy(image_to_float(raw, in_channels, str(path))), settings.normalization)
        labels = predict_labels(model, image, settings.resolution, settings.eval_policy, torch_device).numpy().astype(np.uint8)
        written.append(write_png(output_dir / f"{path.stem}.png", labels))
        if overlay:
            write_png(output_dir / f"{path.stem}_overlay.png", overlay_image(display_image(image), labels))
    return written


def check_output_folder(input_dir: Path, output_dir: Path, targets: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, to write over the user's files: masks are named like the images they segment."""
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(f"output folder {output_dir} is the input folder: the masks would replace the images; choose another folder")
    existing = [path.name for path in targets if path.exists()]
    if existing and not overwrite:
        listed = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise UsageError(f"{output_dir} already holds {len(existing)} of the files to write ({listed}); pass --force to replace them")


def check_resolution(model: torch.nn.Module, settings: PredictSettings, device: torch.device) -> None:
    """One forward of a blank image at --resolution, so that a size the model cannot take (its bottleneck would be
    1x1, or not divisible as it requires) is reported naming the option, before any mask is written."""
    height, width = settings.resolution
    blank = torch.zeros(model.usemabench_spec["in_channels"], height, width)
    try:
        predict_logits(model, blank, settings.resolution, settings.eval_policy, device)
    except ValueError as error:
        info = model.usemabench_info
        divisor = getattr(model, "size_divisor", info.size_divisor)
        padded = info.size_policy == "pad" and min(height, width) <= divisor
        hint = f"; it pads inputs to a multiple of {divisor}, so try more than {divisor}" if padded else ""
        name = model.usemabench_spec["name"]
        raise UsageError(f"--resolution {height}: model {name!r} cannot take a {height}x{width} input ({error}){hint}") from error


def overlay_image(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB uint8: the image in gray (or colour) with each foreground class tinted in its colour."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    blended = rgb.astype(np.float32)
    foreground = labels > 0
    colours = PALETTE[(labels[foreground].astype(np.int64) - 1) % len(PALETTE)]
    blended[foreground] = (1 - OVERLAY_ALPHA) * blended[foreground] + OVERLAY_ALPHA * colours
    return blended.round().astype(np.uint8)
