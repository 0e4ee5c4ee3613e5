"""Pixels left out of training and scoring: a field of view, an ignore mask, or an ignore label value.

A folder dataset may hold, beside `masks/` (wherever a masks folder is, e.g. `train/masks/` or
`masks/train/`: the path with `masks` replaced) and with the case ids as file stems, either
    fov/      nonzero = inside the field of view (scored); pixels outside it are ignored
    ignore/   nonzero = ignored (e.g. an uncertain band along the annotated boundary)
and its URI may name a raw mask value to ignore (`?ignore_index=255`). Ignored pixels carry the label
IGNORE_INDEX in the loader's int64 mask, so every transform moves them with the mask (torchvision.transforms.v2
resamples masks by nearest neighbour); the loss and every metric leave them out.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import is_image_file

IGNORE_INDEX = -1  # label of ignored pixels in loader masks; never a class index
REGION_FOLDERS = ("fov", "ignore")


def region_file(mask_path: str | Path, case_id: str) -> tuple[str, Path] | None:
    """(kind, file) of the region mask of a case whose label mask is `mask_path`, or None without a region folder.

    DatasetError when both region folders exist, or when the folder exists but has no file for the case."""
    parts = Path(mask_path).parts
    if "masks" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("masks")
    folders = {kind: Path(*parts[:at], kind, *parts[at + 1 : -1]) for kind in REGION_FOLDERS}
    present = [kind for kind, folder in folders.items() if folder.is_dir()]
    if not present:
        return None
    if len(present) > 1:
        raise DatasetError(f"{folders['fov'].parent}: both fov/ and ignore/ folders; keep one of them")
    kind = present[0]
    path = _stems(folders[kind], folders[kind].stat().st_mtime_ns).get(case_id)
    if path is None:
        raise DatasetError(f"{folders[kind]}: no {kind} mask for case '{case_id}' (every case needs one when {kind}/ exists)")
    return kind, path


@lru_cache(maxsize=16)
def _stems(folder: Path, modified_ns: int) -> dict[str, Path]:
    # One listing per folder (and folder mtime, so added files are seen): looked up for every case read.
    return {path.stem: path for path in sorted(folder.iterdir()) if is_image_file(path)}


def apply_region(labels: np.ndarray, region: np.ndarray, kind: str, where: str) -> np.ndarray:
    """`labels` with the pixels a `fov` (outside it) or `ignore` (inside it) region leaves out set to IGNORE_INDEX."""
    if kind not in REGION_FOLDERS:
        raise DatasetError(f"{where}: unknown region kind {kind!r}; expected one of {REGION_FOLDERS}")
    if region.shape[:2] != labels.shape:
        raise DatasetError(
            f"{where}: {kind} mask is {region.shape[1]}x{region.shape[0]} (WxH) "
            f"but the label mask is {labels.shape[1]}x{labels.shape[0]}"
        )
    flat = region if region.ndim == 2 else region.any(axis=2)
    ignored = flat == 0 if kind == "fov" else flat != 0
    return np.where(ignored, IGNORE_INDEX, labels)


def describe_ignored(region_kind: str | None, ignore_value: int | None) -> str:
    """What a run leaves out of its loss and metrics, in words, for records ('none' when nothing)."""
    parts = []
    if region_kind == "fov":
        parts.append("pixels outside the fov/ mask")
    elif region_kind == "ignore":
        parts.append("pixels inside the ignore/ mask")
    if ignore_value is not None:
        parts.append(f"pixels of raw mask value {ignore_value}")
    return " and ".join(parts) if parts else "none"
