"""DatasetSpec: what a fair benchmark must know about a dataset, and the registry of named datasets.

A spec names its data by a source URI (`folder:PATH`, `nnunet:PATH`, `hf:REPO_OR_PATH[:SPLIT]`,
`synthetic:`), says how masks encode classes (`labels.py`), how images are normalised, which committed
split file fixes train/val/test, and how evaluation reaches native resolution (`eval_policy`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.labels import MASK_ENCODINGS, decode_mask
from usemabench.datasets.regions import IGNORE_INDEX

TASKS = ("binary", "multiclass")
EVAL_POLICIES = ("resize", "letterbox", "sliding_window")
NORMALIZATIONS = ("zscore", "minmax", "none")
SOURCE_SCHEMES = ("folder", "nnunet", "hf", "synthetic")
PACKAGED_SPLITS = Path(__file__).resolve().parent / "splits"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its classes, channels, data source, split file and preprocessing.

    normalization: per image and channel `"zscore"` or `"minmax"`, `"none"` (integers scaled to [0, 1]),
        or fixed `{"mean": [...], "std": [...]}` applied after that scaling (e.g. ImageNet statistics).
    mask_encoding / label_map / mask_threshold: see `usemabench.datasets.labels`.
    eval_policy: `"resize"` (the image is stretched to the model's resolution and the logits back to native
        size), `"letterbox"` (the same, keeping the aspect ratio: the long side resized, the rest padded; the
        default of ad-hoc sources) or `"sliding_window"` (native-scale patches of the training resolution,
        blended). Training geometry follows it (`transforms.py`).
    split_file: a file in the package's `datasets/splits/` or an absolute path.
    split_sources: per-split source overriding `source` (e.g. a separate official test folder).
    ignore_index: a raw mask value whose pixels are left out of the loss and the metrics (`regions.py`).
    """

    name: str
    modality: str
    task: str
    class_names: tuple[str, ...]
    in_channels: int
    source: str
    split_file: str
    license: str = "unknown"
    citation: str = ""
    normalization: str | Mapping[str, Sequence[float]] = "zscore"
    mask_encoding: str = "index"
    label_map: Mapping[int, int] | None = None
    mask_threshold: int = 127
    eval_policy: str = "resize"
    split_sources: Mapping[str, str] = field(default_factory=dict)
    ignore_index: int | None = None
    homepage: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        # plain dict copies (not mapping proxies): specs travel to DataLoader workers, which pickles them
        object.__setattr__(self, "split_sources", dict(self.split_sources))
        if self.label_map is not None:
            object.__setattr__(self, "label_map", {int(k): int(v) for k, v in self.label_map.items()})
        if isinstance(self.normalization, Mapping):
            object.__setattr__(self, "normalization", {k: tuple(float(x) for x in v) for k, v in self.normalization.items()})
        for problem in self._problems():
            raise DatasetError(f"dataset spec {self.name!r}: {problem}")

    def _problems(self) -> list[str]:
        problems = []
        if self.task not in TASKS:
            problems.append(f"task {self.task!r} is not one of {TASKS}")
        if len(self.class_names) < 2:
            problems.append("class_names needs the background and at least one foreground class")
        if self.task == "binary" and len(self.class_names) != 2:
            problems.append(f"a binary task has 2 classes, got {len(self.class_names)}")
        if self.task == "multiclass" and len(self.class_names) < 3:
            problems.append("a multiclass task has at least 3 classes (use task='binary' for 2)")
        if self.in_channels < 1:
            problems.append(f"in_channels must be >= 1, got {self.in_channels}")
        if self.mask_encoding not in MASK_ENCODINGS:
            problems.append(f"mask_encoding {self.mask_encoding!r} is not one of {MASK_ENCODINGS}")
        if self.mask_encoding in ("threshold", "instances") and self.task != "binary":
            problems.append(f"mask_encoding {self.mask_encoding!r} gives a binary mask; task must be 'binary'")
        if self.label_map is not None and any(not 0 <= v < len(self.class_names) for v in self.label_map.values()):
            problems.append(f"label_map {dict(self.label_map)} maps to classes outside 0..{len(self.class_names) - 1}")
        if self.ignore_index is not None and self.ignore_index < 0:
            problems.append(f"ignore_index must be a raw mask value >= 0, got {self.ignore_index}")
        if self.eval_policy not in EVAL_POLICIES:
            problems.append(f"eval_policy {self.eval_policy!r} is not one of {EVAL_POLICIES}")
        if isinstance(self.normalization, Mapping):
            if set(self.normalization) != {"mean", "std"}:
                problems.append("a fixed normalization is {'mean': [...], 'std': [...]}")
            elif any(len(self.normalization[k]) not in (1, self.in_channels) for k in ("mean", "std")):
                problems.append(f"normalization mean/std need one value, or one per channel ({self.in_channels})")
            elif any(value <= 0 for value in self.normalization["std"]):
                problems.append("normalization std values must be positive")
        elif self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization {self.normalization!r} is not one of {NORMALIZATIONS} or a mean/std mapping")
        for uri in (self.source, *self.split_sources.values()):
            if uri.split(":", 1)[0] not in SOURCE_SCHEMES:
                problems.append(f"source {uri!r} does not start with one of {', '.join(s + ':' for s in SOURCE_SCHEMES)}")
        return problems

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def source_for(self, split: str) -> str:
        """The source URI holding the cases of `split`."""
        return self.split_sources.get(split, self.source)

    @property
    def split_path(self) -> Path:
        path = Path(self.split_file).expanduser()
        return path if path.is_absolute() else PACKAGED_SPLITS / path

    def decode_mask(self, raw: np.ndarray, where: str) -> np.ndarray:
        """(H, W) int64 class indices of a raw mask; DatasetError naming `where` for values not allowed.

        Pixels of raw value `ignore_index` get IGNORE_INDEX (they are decoded as background first, so that
        they pass the value check and never become foreground under a threshold)."""
        ignored = None
        if self.ignore_index is not None:
            if raw.ndim != 2:
                raise DatasetError(f"{where}: ignore_index={self.ignore_index} needs a single-channel mask, got {raw.shape[2]} channels")
            ignored = raw == self.ignore_index
            raw = np.where(ignored, 0, raw)
        labels = decode_mask(
            raw,
            encoding=self.mask_encoding,
            num_classes=self.num_classes,
            label_map=self.label_map,
            threshold=self.mask_threshold,
            where=where,
        )
        return labels if ignored is None else np.where(ignored, IGNORE_INDEX, labels)


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add `spec` to the registry under `spec.name` (a second registration of a name is an error unless `replace`)."""
    if spec.name in _REGISTRY and not replace:
        raise DatasetError(f"dataset {spec.name!r} is already registered")
    if ":" in spec.name or "/" in spec.name:
        raise DatasetError(f"dataset name {spec.name!r} may not contain ':' or '/' (those mark source URIs)")
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def is_source_uri(text: str) -> bool:
    return text.split(":", 1)[0] in SOURCE_SCHEMES and ":" in text


def _looks_like_path(text: str) -> bool:
    """A value meant as a folder (registered names hold no separator): say it is missing, not that the name is unknown."""
    return any(sep in text for sep in (os.sep, os.altsep) if sep) or text.startswith((".", "~"))


def get_dataset_spec(name_or_uri: str | DatasetSpec, *, split_file: str | None = None) -> DatasetSpec:
    """A registered dataset by name, or an ad-hoc spec read from the data behind a source URI or folder path.

    For an ad-hoc source the classes come from the label values (or nnU-Net's dataset.json) and the split
    file defaults to one written once under the cache (see `splits.ensure_split_file`).
    """
    if isinstance(name_or_uri, DatasetSpec):
        return name_or_uri
    if name_or_uri in _REGISTRY:
        spec = _REGISTRY[name_or_uri]
        if split_file is not None:
            spec = replace(spec, split_file=str(Path(split_file).resolve()))
        return spec
    if is_source_uri(name_or_uri) or Path(name_or_uri).expanduser().is_dir():
        from usemabench.datasets.inference import infer_spec

        return infer_spec(name_or_uri, split_file=split_file)
    if _looks_like_path(name_or_uri):
        raise DatasetError(f"dataset folder not found: {name_or_uri}")
    close = difflib.get_close_matches(name_or_uri, list(_REGISTRY), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    raise DatasetError(
        f"unknown dataset {name_or_uri!r}{hint} Registered: {', '.join(list_datasets())}; "
        f"or give a source URI ({', '.join(s + ':...' for s in SOURCE_SCHEMES)})"
    )
