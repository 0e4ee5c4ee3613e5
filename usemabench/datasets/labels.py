"""Mask encodings: how raw mask values become class indices, and which raw values a dataset allows.

    index       raw value = class index (0 = background), or looked up in `label_map` (e.g. {0: 0, 255: 1})
    threshold   binary: first channel > `mask_threshold` is foreground (JPEG masks with compression ringing)
    instances   binary: any instance id > 0 is foreground (16-bit instance label maps)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import describe_colour

MASK_ENCODINGS = ("index", "threshold", "instances")


STRAY_MASK_SHARE = 0.1  # a value held by at most this share of the masks (at least one) may be stray


def plain_values(values: list[int]) -> bool:
    """Whether raw mask values read without guessing: 0 and one other value (binary), or 0..K (class indices)."""
    foreground = sorted(v for v in values if v != 0)
    return len(foreground) == 1 or (bool(foreground) and foreground == list(range(1, len(foreground) + 1)))


def stray_values(masks_holding: Mapping[int, int], masks: int) -> list[int]:
    """Values that few masks hold and without which the rest are plain (a 7 beside 0/255, a 1000 beside 0..2).

    Such a value is an annotation slip more likely than a class: it must not become a class of its own (nor
    vanish into background), so the masks holding it are refused, each by name, unless the user declares
    the classes. `masks_holding`: value -> number of masks holding it.
    """
    values = sorted(masks_holding)
    if plain_values(values):
        return []
    rare_limit = max(1, int(masks * STRAY_MASK_SHARE))
    for limit in sorted({count for value, count in masks_holding.items() if value != 0 and count <= rare_limit}):
        stray = [value for value in values if value != 0 and masks_holding[value] <= limit]
        if plain_values([value for value in values if value not in stray]):
            return stray
    return []


def describe_values(values: np.ndarray | list[int], limit: int = 8) -> str:
    """Raw mask values for a message: colour codes of RGB(A) masks as '#rrggbb' (see `imaging.colour_codes`)."""
    values = [int(value) for value in values]
    shown = ", ".join(describe_colour(value) for value in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def decode_mask(
    raw: np.ndarray,
    *,
    encoding: str,
    num_classes: int,
    label_map: Mapping[int, int] | None,
    threshold: int,
    where: str,
) -> np.ndarray:
    """(H, W) int64 class indices from raw mask values; DatasetError naming `where` for values not allowed."""
    if encoding == "threshold":
        return (raw > threshold).astype(np.int64)
    if encoding == "instances":
        if raw.min(initial=0) < 0:
            raise DatasetError(f"{where}: instance mask holds negative values ({describe_values(np.unique(raw[raw < 0]))})")
        return (raw > 0).astype(np.int64)
    if encoding != "index":
        raise DatasetError(f"unknown mask encoding {encoding!r}; expected one of {MASK_ENCODINGS}")
    values = np.unique(raw)
    if label_map is None:
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise DatasetError(
                f"{where}: label value(s) {describe_values(bad)} not allowed; "
                f"this dataset has {num_classes} classes (values 0..{num_classes - 1})"
            )
        return raw.astype(np.int64)
    bad = values[~np.isin(values, list(label_map))]
    if bad.size:
        allowed = describe_values(sorted(label_map))
        raise DatasetError(f"{where}: label value(s) {describe_values(bad)} not allowed; allowed raw values are {allowed}")
    classes = np.zeros(raw.shape, dtype=np.int64)
    for raw_value, class_index in label_map.items():
        if class_index:
            classes[raw == raw_value] = class_index
    return classes
