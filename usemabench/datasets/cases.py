"""One case from its source to arrays: the checks every pair passes before a model sees it."""

from __future__ import annotations

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import image_to_float, read_image
from usemabench.datasets.regions import apply_region, region_file
from usemabench.datasets.sources import Source
from usemabench.datasets.spec import DatasetSpec


def load_case(spec: DatasetSpec, source: Source, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (C, H, W) scaled to [0, 1] for integer files, mask int64 (H, W) class indices).

    Ignored pixels (a `fov/` or `ignore/` region beside the masks, or the spec's `ignore_index`) hold
    IGNORE_INDEX in the mask (`regions.py`).

    Raises DatasetError naming the file for an unreadable file, a missing mask, an image/mask size
    mismatch, a channel count the spec does not take, non-finite pixels or a label value not allowed.
    """
    pair = source.read_pair(case_id, mask_first_channel=spec.mask_encoding == "threshold")
    image_size, mask_size = pair.image.shape[:2], pair.mask.shape[:2]
    if image_size != mask_size:
        raise DatasetError(
            f"{pair.mask_name}: mask is {mask_size[1]}x{mask_size[0]} (WxH) "
            f"but its image {pair.image_name} is {image_size[1]}x{image_size[0]}"
        )
    image = image_to_float(pair.image, spec.in_channels, pair.image_name)
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DatasetError(f"{pair.image_name}: image holds NaN or infinite values")
    labels = spec.decode_mask(pair.mask, pair.mask_name)
    region = region_file(pair.mask_name, case_id)
    if region is not None:
        kind, path = region
        labels = apply_region(labels, read_image(path), kind, str(path))
    return image, labels
