"""Importers: known raw layouts converted into the folder format (`images/`, `masks/` paired by stem).

    kvasir           Kvasir-SEG: JPEG masks with compression ringing -> PNG {0, 255} (first channel > 127)
    dsb2018          Data Science Bowl 2018: `<id>/images/<id>.png` + one PNG per nucleus in `<id>/masks/`
                     -> `masks/<id>.png` union {0, 255} and `labels/<id>.png` 16-bit instance ids
    isbi2012         ISBI 2012 EM PNG slices in `image/` and `label/` (the zhixuhao/unet layout) -> copies
    stardist_sample  the nucleus image and mask bundled in the stardist wheel -> one TIFF pair
    relabel          a folder-format dataset with its mask values re-encoded by a map (e.g. 255 -> 1)

Images are copied byte for byte; masks are written as PNG. The destination must be new or empty.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import is_image_file, read_image, read_mask
from usemabench.datasets.labels import describe_values
from usemabench.datasets.sources import FolderSource
from usemabench.core.io import atomic_write_json


@dataclass
class ImportReport:
    layout: str
    cases: int = 0
    notes: list[str] = field(default_factory=list)


def _prepare_destination(dst: Path) -> None:
    if dst.exists() and any(dst.iterdir()):
        raise DatasetError(f"{dst}: destination exists and is not empty")
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(exist_ok=True)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    dtype = np.uint8 if mask.max(initial=0) < 256 else np.uint16
    Image.fromarray(mask.astype(dtype)).save(path)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path


def import_kvasir(src: Path, dst: Path) -> ImportReport:
    """Kvasir-SEG as released (`images/*.jpg`, `masks/*.jpg`, or one `Kvasir-SEG/` folder above them)."""
    if not (src / "images").is_dir() and (src / "Kvasir-SEG").is_dir():
        src = src / "Kvasir-SEG"
    images = {p.stem: p for p in sorted(_require_dir(src / "images", "Kvasir-SEG images").iterdir()) if is_image_file(p)}
    masks = {p.stem: p for p in sorted(_require_dir(src / "masks", "Kvasir-SEG masks").iterdir()) if is_image_file(p)}
    if not images:
        raise DatasetError(f"{src / 'images'}: no images")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DatasetError(f"{images[missing[0]]}: missing mask ({len(missing)} image(s) without a mask)")
    _prepare_destination(dst)
    report = ImportReport("kvasir")
    for case_id, image_path in images.items():
        mask = read_mask(masks[case_id], first_channel=True)
        if mask.shape != read_image(image_path).shape[:2]:
            raise DatasetError(f"{masks[case_id]}: mask size differs from its image {image_path.name}")
        shutil.copyfile(image_path, dst / "images" / image_path.name)
        _write_mask(dst / "masks" / f"{case_id}.png", np.where(mask > 127, 255, 0))
        report.cases += 1
    if (src / "kavsir_bboxes.json").is_file():
        shutil.copyfile(src / "kavsir_bboxes.json", dst / "kavsir_bboxes.json")
    report.notes.append("masks thresholded at 127 on the first channel and written as PNG {0, 255}")
    return report


def import_dsb2018(src: Path, dst: Path) -> ImportReport:
    """DSB 2018 stage1 layout: one folder per image id with `images/<id>.png` and per-nucleus `masks/*.png`."""
    cases = sorted(p for p in _require_dir(src, "DSB 2018").iterdir() if p.is_dir() and (p / "images").is_dir())
    if not cases:
        raise DatasetError(f"{src}: no '<id>/images/<id>.png' case folders (DSB 2018 stage1 layout)")
    _prepare_destination(dst)
    (dst / "labels").mkdir()
    report = ImportReport("dsb2018")
    overlap_pixels = 0
    for case in cases:
        image_path = case / "images" / f"{case.name}.png"
        instance_files = sorted(p for p in (case / "masks").glob("*.png")) if (case / "masks").is_dir() else []
        if not image_path.is_file():
            raise DatasetError(f"{image_path}: image not found")
        if not instance_files:
            raise DatasetError(f"{case / 'masks'}: no instance masks for image {case.name}")
        height, width = read_image(image_path).shape[:2]
        labels = np.zeros((height, width), dtype=np.uint16)
        for instance, path in enumerate(instance_files, start=1):
            nucleus = read_mask(path) > 0
            if nucleus.shape != (height, width):
                raise DatasetError(f"{path}: instance mask is {nucleus.shape[1]}x{nucleus.shape[0]}, its image is {width}x{height}")
            overlap_pixels += int(np.count_nonzero(labels[nucleus]))
            labels[nucleus] = instance  # the later instance (in file-name order) wins an overlap
        shutil.copyfile(image_path, dst / "images" / image_path.name)
        _write_mask(dst / "masks" / f"{case.name}.png", np.where(labels > 0, 255, 0))
        Image.fromarray(labels).save(dst / "labels" / f"{case.name}.png")
        report.cases += 1
    report.notes.append(
        f"instances merged into a {{0, 255}} union and 16-bit label maps; {overlap_pixels} overlapping pixel(s) went to the later instance"
    )
    return report


def import_isbi2012(src: Path, dst: Path) -> ImportReport:
    """ISBI 2012 slices as PNGs in `image/` and `label/` ({0, 255}, 255 = cell interior), copied unchanged."""
    images = {p.stem: p for p in sorted(_require_dir(src / "image", "ISBI 2012 image").iterdir()) if is_image_file(p)}
    labels = {p.stem: p for p in sorted(_require_dir(src / "label", "ISBI 2012 label").iterdir()) if is_image_file(p)}
    if not images or set(images) != set(labels):
        raise DatasetError(f"{src}: image/ and label/ must hold the same, non-empty set of slice names")
    _prepare_destination(dst)
    for case_id in images:
        values = np.unique(read_mask(labels[case_id]))
        if not set(values.tolist()) <= {0, 255}:
            raise DatasetError(f"{labels[case_id]}: label values {describe_values(values)}, expected {{0, 255}}")
        shutil.copyfile(images[case_id], dst / "images" / images[case_id].name)
        shutil.copyfile(labels[case_id], dst / "masks" / labels[case_id].name)
    return ImportReport("isbi2012", len(images), ["copied unchanged: 255 = cell interior, 0 = membrane"])


def import_stardist_sample(src: Path, dst: Path) -> ImportReport:
    """The DSB 2018 crop inside the stardist wheel: `stardist/data/images/{img2d,mask2d}.tif`."""
    folder = src / "stardist" / "data" / "images"
    pair = (folder / "img2d.tif", folder / "mask2d.tif")
    for path in pair:
        if not path.is_file():
            raise DatasetError(f"{path}: not found (expected the stardist wheel's bundled sample)")
    _prepare_destination(dst)
    shutil.copyfile(pair[0], dst / "images" / "img2d.tif")
    shutil.copyfile(pair[1], dst / "masks" / "img2d.tif")
    return ImportReport("stardist_sample", 1, ["mask is a 16-bit instance label map (binary: > 0)"])


def parse_label_map(text: str) -> dict[int, int]:
    """'0:0,255:1' -> {0: 0, 255: 1}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        raw, _, value = item.partition(":")
        try:
            mapping[int(raw)] = int(value)
        except ValueError:
            raise DatasetError(f"label map entry {item!r} is not RAW:CLASS with integers") from None
    if not mapping:
        raise DatasetError("an empty label map; give e.g. --map 0:0,255:1")
    return mapping


def import_relabel(src: Path, dst: Path, label_map: Mapping[int, int]) -> ImportReport:
    """A folder-format dataset with every mask value v replaced by label_map[v] (values not in the map: an error)."""
    source = FolderSource(src)
    if source.problems():
        raise DatasetError(source.problems()[0])
    _prepare_destination(dst)
    for case_id in source.case_ids():
        pair = source.read_pair(case_id)
        values = np.unique(pair.mask)
        unknown = values[~np.isin(values, list(label_map))]
        if unknown.size:
            raise DatasetError(f"{pair.mask_name}: mask value(s) {describe_values(unknown)} are not in the label map {dict(label_map)}")
        relabelled = np.zeros(pair.mask.shape, dtype=np.int64)
        for raw, value in label_map.items():
            relabelled[pair.mask == raw] = value
        image_path = Path(pair.image_name)
        shutil.copyfile(image_path, dst / "images" / image_path.name)
        _write_mask(dst / "masks" / f"{case_id}.png", relabelled)
    return ImportReport("relabel", len(source.case_ids()), [f"mask values mapped by {dict(label_map)}"])


IMPORTERS: dict[str, Callable[..., ImportReport]] = {
    "kvasir": import_kvasir,
    "dsb2018": import_dsb2018,
    "isbi2012": import_isbi2012,
    "stardist_sample": import_stardist_sample,
    "relabel": import_relabel,
}


def run_import(layout: str, src: str | Path, dst: str | Path, label_map: Mapping[int, int] | None = None) -> ImportReport:
    """Convert `src` (a raw `layout`) into the folder format at `dst`, with a provenance note beside it."""
    if layout not in IMPORTERS:
        raise DatasetError(f"unknown layout {layout!r}; layouts: {', '.join(IMPORTERS)}")
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if layout == "relabel":
        if label_map is None:
            raise DatasetError("the relabel layout needs a label map (--map RAW:CLASS,...)")
        report = import_relabel(src, dst, label_map)
    else:
        report = IMPORTERS[layout](src, dst)
    atomic_write_json(dst / "usemabench-import.json", {"layout": layout, "source": str(src), "cases": report.cases, "notes": report.notes})
    return report
