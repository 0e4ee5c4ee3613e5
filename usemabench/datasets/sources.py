"""Data sources: where the (image, mask) pairs of a dataset are read from.

    folder:PATH[?mask_suffix=_mask]     PATH/images/<case>.<ext> paired by file stem with PATH/masks/<case>.<ext>;
                                        or official parts: PATH/images/{train,test}/ or PATH/{train,test}/images/
    nnunet:PATH                         nnU-Net raw 2D: dataset.json, imagesTr/<case>_0000.<ext>, labelsTr/<case>.<ext>
    hf:REPO_OR_PATH[:SPLIT][?image=COL&mask=COL]   a Hugging Face `datasets` dataset with image and mask columns
    synthetic:                          the embedded synthetic dataset, generated into the cache on first use

A source lists case ids and reads raw pairs; it never decides what label values mean (that is the
DatasetSpec's job), so the same reader serves registered and ad-hoc datasets. The `?key=value` options are listed in
`source_options.py`.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import IMAGE_SUFFIXES, is_image_file, pil_to_image_array, pil_to_mask_array, read_image, read_mask
from usemabench.datasets.locations import expand_data_placeholder
from usemabench.datasets.regions import region_file
from usemabench.datasets.source_options import check_source_options

logger = logging.getLogger(__name__)
NATIVE_SPLIT_NAMES = {
    "train": "train", "training": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


@dataclass(frozen=True)
class SourceURI:
    """A parsed source URI: `scheme:target?key=value&...` (for `hf:` a trailing `:split` becomes an option)."""

    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SourceURI:
        if ":" not in text:
            path = Path(text).expanduser()
            return cls("nnunet" if (path / "dataset.json").is_file() else "folder", str(path))
        scheme, rest = text.split(":", 1)
        target, _, query = rest.partition("?")
        # '+' stays a plus (a regular expression such as `group_by=^(.*\D)\d+$` needs it); '&' is written %26
        options = dict(parse_qsl(query.replace("+", "%2B"), keep_blank_values=True))
        if scheme == "hf" and ":" in target:
            head, tail = target.rsplit(":", 1)
            if tail and "/" not in tail:
                target = head
                options.setdefault("split", tail)
        return cls(scheme, target, options)


@dataclass
class RawPair:
    """One case as stored: image (H, W, C) and raw mask values (H, W), with names for error messages."""

    image: np.ndarray
    mask: np.ndarray
    image_name: str
    mask_name: str


class Source(ABC):
    """Lists the cases of one data location and reads their raw pairs."""

    uri: str
    parallel_safe = True  # whether pairs may be read from several threads at once

    @abstractmethod
    def case_ids(self) -> list[str]:
        """Sorted case ids (every image, whether or not its mask exists: a missing mask is a problem to report)."""

    @abstractmethod
    def read_pair(self, case_id: str, mask_first_channel: bool = False) -> RawPair:
        """The raw pair of `case_id`; DatasetError naming the file when it is missing or unreadable."""

    def problems(self) -> list[str]:
        """Problems of the source as a whole (masks without images, ambiguous file names)."""
        return []

    def case_files(self, case_id: str) -> dict[str, Path] | None:
        """{role: file} of every file `read_pair` reads for `case_id` (what the data hash covers), or None
        for a source that is not file-backed (its decoded arrays are hashed instead)."""
        return None

    def native_splits(self) -> dict[str, str]:
        """case id -> 'train' | 'val' | 'test' where the source itself defines splits (part folders, HF splits)."""
        return {}

    def shipped_split_file(self) -> Path | None:
        """A split file shipped with the data (`split.csv`, `splits_final.json`, ...), used unless `?split_file=`
        names another."""
        return None

    def groups_file(self) -> Path | None:
        """A `groups.csv` (case_id,group) shipped with the data: cases of one group never straddle splits."""
        return None


def _index_folder(folder: Path, strip_suffix: str = "") -> tuple[dict[str, Path], list[str]]:
    """{case id: file} of the image files in `folder`, and the problems of ids shared by several files."""
    index: dict[str, Path] = {}
    problems = []
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        case_id = path.stem
        if strip_suffix:
            if not case_id.endswith(strip_suffix):
                problems.append(f"{path}: mask file name does not end with '{strip_suffix}'")
                continue
            case_id = case_id[: -len(strip_suffix)]
        if case_id in index:
            problems.append(f"{index[case_id]} and {path.name}: two files for case '{case_id}'")
            continue
        index[case_id] = path
    return index, problems


SHIPPED_SPLIT_NAMES = ("split.csv", "splits.csv", "split.json", "splits.json", "splits_final.json")


class FolderSource(Source):
    """`images/` and `masks/` paired by file stem (masks may carry a fixed `mask_suffix`, e.g. `_mask`).

    An official split may be laid out as part folders, inside (`images/train`, `masks/train`, `images/test`,
    ...) or around (`train/images`, `train/masks`, `test/...`) the image/mask folders: each case's part is
    then its native split, which every split file keeps. Case ids stay the file stems (unique across parts);
    a part without a masks folder (an unlabelled challenge test set) is left out, and said so.
    """

    def __init__(self, root: str | Path, uri: str | None = None, mask_suffix: str = "") -> None:
        self.root = Path(root)
        self.uri = uri or f"folder:{self.root}"
        self.mask_suffix = mask_suffix
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder not found")
        self.images: dict[str, Path] = {}
        self.masks: dict[str, Path] = {}
        self._mask_folders: dict[str, Path] = {}
        self._native: dict[str, str] = {}
        self._problems: list[str] = []
        for part, image_folder, mask_folder in self._layout():
            images, image_problems = _index_folder(image_folder)
            masks, mask_problems = _index_folder(mask_folder, mask_suffix)
            self._problems += image_problems + mask_problems
            self._add(images, self.images, part)
            self._add(masks, self.masks, None)
            self._mask_folders.update(dict.fromkeys(images, mask_folder))
        orphans = [f"{self.masks[case_id]}: mask without an image" for case_id in sorted(set(self.masks) - set(self.images))]
        self._problems += orphans

    def _layout(self) -> list[tuple[str | None, Path, Path]]:
        """(part or None, image folder, mask folder) of every labelled folder pair under the root."""
        if (self.root / "images").is_dir() or (self.root / "masks").is_dir():
            missing = [name for name in ("images", "masks") if not (self.root / name).is_dir()]
            if missing:
                raise DatasetError(f"{self.root}: not an image/mask folder: no {' or '.join(n + '/' for n in missing)} subfolder")
            inside = [(folder.name, folder, self.root / "masks" / folder.name) for folder in self._part_folders(self.root / "images")]
            return [(None, self.root / "images", self.root / "masks"), *self._labelled(inside)]
        around = [(folder.name, folder / "images", folder / "masks") for folder in self._part_folders(self.root) if (folder / "images").is_dir()]
        if not around:
            raise DatasetError(
                f"{self.root}: not an image/mask folder: no images/ and masks/ subfolders "
                f"(nor part folders such as train/images and test/images)"
            )
        return self._labelled(around)

    @staticmethod
    def _part_folders(folder: Path) -> list[Path]:
        return [path for path in sorted(folder.iterdir()) if path.is_dir() and path.name.lower() in NATIVE_SPLIT_NAMES]

    def _labelled(self, parts: list[tuple[str, Path, Path]]) -> list[tuple[str | None, Path, Path]]:
        for _, image_folder, mask_folder in parts:
            if not mask_folder.is_dir():
                logger.warning("%s: no %s beside it; this unlabelled part is left out", image_folder, mask_folder.relative_to(self.root))
        return [(part, image_folder, mask_folder) for part, image_folder, mask_folder in parts if mask_folder.is_dir()]

    def _add(self, found: dict[str, Path], into: dict[str, Path], part: str | None) -> None:
        for case_id, path in found.items():
            if case_id in into:
                self._problems.append(f"{into[case_id]} and {path}: two files for case '{case_id}'")
                continue
            into[case_id] = path
            if part is not None:
                self._native[case_id] = NATIVE_SPLIT_NAMES[part.lower()]

    def native_splits(self) -> dict[str, str]:
        return dict(self._native)

    def groups_file(self) -> Path | None:
        path = self.root / "groups.csv"
        return path if path.is_file() else None

    def shipped_split_file(self) -> Path | None:
        found = [self.root / name for name in SHIPPED_SPLIT_NAMES if (self.root / name).is_file()]
        if len(found) > 1:
            raise DatasetError(
                f"{self.root}: {' and '.join(path.name for path in found)} are both split files; "
                f"name the one to use: folder:{self.root}?split_file={found[0]}"
            )
        return found[0] if found else None

    def case_ids(self) -> list[str]:
        return sorted(self.images)

    def problems(self) -> list[str]:
        return list(self._problems)

    def case_files(self, case_id: str) -> dict[str, Path] | None:
        files = {"image": self.images[case_id]}
        if case_id in self.masks:
            files["mask"] = self.masks[case_id]
            region = region_file(self.masks[case_id], case_id)  # a fov/ or ignore/ mask: part of the data too
            if region is not None:
                files[region[0]] = region[1]
        return files

    def read_pair(self, case_id: str, mask_first_channel: bool = False) -> RawPair:
        if case_id not in self.images:
            raise DatasetError(f"{self.root}: no image for case '{case_id}' in images/")
        image_path = self.images[case_id]
        mask_path = self.masks.get(case_id)
        if mask_path is None:
            endings = "|".join(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
            folder = self._mask_folders[case_id].relative_to(self.root).as_posix()
            raise DatasetError(f"{image_path}: missing mask (no {folder}/{case_id}{self.mask_suffix}.<{endings}>)")
        return RawPair(read_image(image_path), read_mask(mask_path, mask_first_channel), str(image_path), str(mask_path))


def read_nnunet_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{root}: not an nnU-Net raw dataset (no dataset.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable dataset.json ({error})") from None
    if not isinstance(payload, dict) or "labels" not in payload or not (payload.get("channel_names") or payload.get("modality")):
        raise DatasetError(f"{path}: dataset.json needs 'labels' and 'channel_names' (nnU-Net v2) or 'modality' (v1)")
    return payload


class NnUNetSource(Source):
    """nnU-Net raw format, 2D: `imagesTr/<case>_<XXXX><ending>` channel files, `labelsTr/<case><ending>` labels.

    An RGB PNG is one `_0000` file holding three channels (as nnU-Net's natural-image reader expects);
    the channels of all files of a case must add up to the `channel_names` of dataset.json.
    """

    CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\.[A-Za-z0-9.]+)$")

    def __init__(self, root: str | Path, uri: str | None = None) -> None:
        self.root = Path(root)
        self.uri = uri or f"nnunet:{self.root}"
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: nnU-Net dataset folder not found")
        self.dataset_json = read_nnunet_dataset_json(self.root)
        self.num_channels = len(self.dataset_json.get("channel_names") or self.dataset_json["modality"])
        self.file_ending = self.dataset_json.get("file_ending")
        for name in ("imagesTr", "labelsTr"):
            if not (self.root / name).is_dir():
                raise DatasetError(f"{self.root}: nnU-Net raw dataset without {name}/")
        self.channel_files: dict[str, dict[int, Path]] = {}
        self._problems: list[str] = []
        for path in sorted((self.root / "imagesTr").iterdir()):
            match = self.CHANNEL_FILE.match(path.name)
            if not match or not self._has_ending(path.name):
                continue
            self.channel_files.setdefault(match["case"], {})[int(match["channel"])] = path
        for case_id, files in self.channel_files.items():
            if sorted(files) != list(range(len(files))):
                expected = f"0..{len(files) - 1}"
                self._problems.append(f"{self.root / 'imagesTr'}: case '{case_id}' has channel files {sorted(files)}, expected {expected}")
        self.labels: dict[str, Path] = {}
        for path in sorted((self.root / "labelsTr").iterdir()):
            if path.is_file() and not path.name.startswith(".") and self._has_ending(path.name):
                case_id = path.name[: -len(self.file_ending)] if self.file_ending else path.stem
                self.labels[case_id] = path
        self._problems += [f"{self.labels[c]}: label without images" for c in sorted(set(self.labels) - set(self.channel_files))]

    def _has_ending(self, file_name: str) -> bool:
        if self.file_ending:
            return file_name.endswith(self.file_ending)
        return Path(file_name).suffix.lower() in IMAGE_SUFFIXES

    def case_ids(self) -> list[str]:
        return sorted(self.channel_files)

    def problems(self) -> list[str]:
        return list(self._problems)

    def case_files(self, case_id: str) -> dict[str, Path] | None:
        files = {f"image_{index:04d}": path for index, path in self.channel_files[case_id].items()}
        if case_id in self.labels:
            files["label"] = self.labels[case_id]
        return files

    def read_pair(self, case_id: str, mask_first_channel: bool = False) -> RawPair:
        files = self.channel_files.get(case_id)
        if files is None:
            raise DatasetError(f"{self.root}: no images for case '{case_id}' in imagesTr/")
        label = self.labels.get(case_id)
        if label is None:
            raise DatasetError(f"{files[min(files)]}: missing label (no labelsTr/{case_id}{self.file_ending or '.<ext>'})")
        channels = [read_image(files[index]) for index in sorted(files)]
        if len({channel.shape[:2] for channel in channels}) > 1:
            raise DatasetError(f"{self.root / 'imagesTr'}: channel files of case '{case_id}' differ in size")
        image = np.concatenate(channels, axis=2) if len(channels) > 1 else channels[0]
        if image.shape[2] != self.num_channels:
            raise DatasetError(f"{files[0]}: case '{case_id}' has {image.shape[2]} channels, dataset.json names {self.num_channels}")
        return RawPair(image, read_mask(label, mask_first_channel), str(files[0]), str(label))


class HuggingFaceSource(Source):
    """A `datasets` dataset (hub repo or local folder of images/parquet) with an image and a mask column.

    Without a split in the URI every split of the dataset is used and its train/validation/test names
    become native splits that the split generator respects.
    """

    IMAGE_COLUMNS = ("image", "img", "pixel_values", "input")
    MASK_COLUMNS = ("mask", "label", "annotation", "segmentation", "segmentation_mask", "seg", "labels")
    ID_COLUMNS = ("case_id", "id", "image_id", "name")
    parallel_safe = False

    def __init__(
        self,
        path: str,
        uri: str | None = None,
        split: str | None = None,
        image_column: str | None = None,
        mask_column: str | None = None,
    ) -> None:
        self.uri = uri or f"hf:{path}" + (f":{split}" if split else "")
        try:
            import datasets
        except ImportError:
            raise DatasetError(f"{self.uri}: hf: sources need the `datasets` package (pip install 'usemabench[hf]')") from None
        try:
            loaded = datasets.load_dataset(path, split=split)
        except Exception as error:  # noqa: BLE001 - network, hub and file errors all mean "cannot load"; say which
            raise DatasetError(f"{self.uri}: cannot load the Hugging Face dataset ({type(error).__name__}: {error})") from None
        self.parts = {split: loaded} if split else dict(loaded)
        columns = next(iter(self.parts.values())).column_names
        self.image_column = self._pick(columns, image_column, self.IMAGE_COLUMNS, "image")
        self.mask_column = self._pick(columns, mask_column, self.MASK_COLUMNS, "mask")
        id_column = next((name for name in self.ID_COLUMNS if name in columns), None)
        self.rows: dict[str, tuple[str, int]] = {}
        self._native: dict[str, str] = {}
        self._problems: list[str] = []
        for part_name, part in self.parts.items():
            ids = [str(value) for value in part[id_column]] if id_column else [f"{part_name}-{i:05d}" for i in range(len(part))]
            for index, case_id in enumerate(ids):
                if case_id in self.rows:
                    self._problems.append(f"{self.uri}: case id '{case_id}' appears twice (column '{id_column}')")
                    continue
                self.rows[case_id] = (part_name, index)
                if not split and part_name in NATIVE_SPLIT_NAMES:
                    self._native[case_id] = NATIVE_SPLIT_NAMES[part_name]

    def _pick(self, columns: list[str], requested: str | None, candidates: tuple[str, ...], what: str) -> str:
        if requested:
            if requested not in columns:
                raise DatasetError(f"{self.uri}: no column '{requested}'; columns are {', '.join(columns)}")
            return requested
        for name in candidates:
            if name in columns:
                return name
        raise DatasetError(f"{self.uri}: no {what} column among {', '.join(columns)}; name it with ?{what}=COLUMN")

    def case_ids(self) -> list[str]:
        return sorted(self.rows)

    def problems(self) -> list[str]:
        return list(self._problems)

    def native_splits(self) -> dict[str, str]:
        return dict(self._native)

    def read_pair(self, case_id: str, mask_first_channel: bool = False) -> RawPair:
        if case_id not in self.rows:
            raise DatasetError(f"{self.uri}: no case '{case_id}'")
        part_name, index = self.rows[case_id]
        where = f"{self.uri} [{part_name} row {index}]"
        try:
            row = self.parts[part_name][index]
        except Exception as error:  # noqa: BLE001 - decoding errors of any image library surface here
            raise DatasetError(f"{where}: unreadable row ({type(error).__name__}: {error})") from None
        image, mask = row[self.image_column], row[self.mask_column]
        image_array = pil_to_image_array(image) if hasattr(image, "mode") else np.asarray(image)
        if image_array.ndim == 2:
            image_array = image_array[:, :, None]
        if hasattr(mask, "mode"):
            mask_array = pil_to_mask_array(mask, f"{where} column '{self.mask_column}'", mask_first_channel)
        else:
            mask_array = np.asarray(mask)
            if mask_array.ndim != 2:
                raise DatasetError(f"{where}: column '{self.mask_column}' is not a 2D mask (shape {mask_array.shape})")
        return RawPair(image_array, mask_array, f"{where} column '{self.image_column}'", f"{where} column '{self.mask_column}'")


def open_source(uri: str) -> Source:
    """The Source behind a URI (a registered dataset's `{data}/...` placeholder is resolved here)."""
    parsed = SourceURI.parse(uri)
    if parsed.scheme == "synthetic":
        from usemabench.datasets.synthetic import ensure_synthetic

        return FolderSource(ensure_synthetic(), uri)
    target = expand_data_placeholder(parsed.target)
    check_source_options(uri, parsed.scheme, parsed.options)
    if parsed.scheme == "folder":
        return FolderSource(Path(target).expanduser(), uri, parsed.options.get("mask_suffix", ""))
    if parsed.scheme == "nnunet":
        return NnUNetSource(Path(target).expanduser(), uri)
    if parsed.scheme == "hf":
        return HuggingFaceSource(target, uri, parsed.options.get("split"), parsed.options.get("image"), parsed.options.get("mask"))
    raise DatasetError(f"{uri}: unknown source scheme '{parsed.scheme}' (folder:, nnunet:, hf:, synthetic:)")
