"""Mask encodings: how raw mask values become class indices, and which raw values a dataset allows.

    index       raw value = class index (0 = background), or looked up in `label_map` (e.g. {0: 0, 255: 1})
    threshold   binary: first channel > `mask_threshold` is foreground (JPEG masks with compression ringing)
    instances   binary: any instance id > 0 is foreground (16-bit instance label maps)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from usemabench.datasets.errors import DatasetError

MASK_ENCODINGS = ("index", "threshold", "instances")


def describe_values(values: np.ndarray | list[int], limit: int = 8) -> str:
    values = [int(value) for value in values]
    shown = ", ".join(str(value) for value in values[:limit])
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
