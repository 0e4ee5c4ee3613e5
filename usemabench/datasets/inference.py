"""Ad-hoc DatasetSpecs read from the data behind a source URI (`folder:`, `nnunet:`, `hf:` or a folder path).

Classes come from nnU-Net's dataset.json, or from the label values found in the masks: {0, 255} is a
binary {background, foreground} mask, values 0..K-1 (0 may be absent) are class indices, a few other
values (e.g. {0, 1, 3}) are mapped to classes in increasing order. URI options override what is inferred:

    ?name=NAME&classes=background,polyp&encoding=index|threshold|instances&threshold=127
     &channels=3&normalization=zscore|minmax|none&eval_policy=resize|sliding_window&modality=TEXT
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.labels import describe_values
from usemabench.datasets.locations import cache_dir, slug
from usemabench.datasets.sources import NnUNetSource, Source, SourceURI, open_source
from usemabench.datasets.spec import DatasetSpec
from usemabench.core.hashing import content_hash

logger = logging.getLogger(__name__)
MAX_INFERRED_CLASSES = 32
NNUNET_NORMALIZATION = {"rgb_to_0_1": "none", "noNorm": "none", "zscore": "zscore"}


def _scan(source: Source, first_channel: bool) -> tuple[set[int], int]:
    """(every raw mask value, the largest image channel count) over the readable pairs of `source`.

    Unreadable pairs are skipped here (verification reports each of them); none readable is an error.
    """

    def read(case_id: str) -> tuple[np.ndarray, int] | DatasetError:
        try:
            pair = source.read_pair(case_id, first_channel)
        except DatasetError as error:
            return error
        return np.unique(pair.mask), pair.image.shape[2]

    values: set[int] = set()
    channels = 0
    errors = []
    workers = min(8, os.cpu_count() or 1) if source.parallel_safe else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(read, source.case_ids()):
            if isinstance(result, DatasetError):
                errors.append(result)
                continue
            values.update(int(v) for v in result[0])
            channels = max(channels, result[1])
    if not channels:
        raise errors[0]
    return values, channels


def _classes_from_values(values: set[int], uri: str) -> tuple[tuple[str, ...], dict[int, int] | None]:
    ordered = sorted(values)
    if ordered and ordered[0] < 0:
        raise DatasetError(f"{uri}: masks hold negative label values ({describe_values([v for v in ordered if v < 0])})")
    foreground = [v for v in ordered if v != 0]
    if not foreground:
        raise DatasetError(f"{uri}: every mask is empty (only 0); name the classes with ?classes=background,NAME")
    if len(foreground) == 1:  # e.g. {0, 255}
        return ("background", "foreground"), {0: 0, foreground[0]: 1}
    # Only 0..K-1 are class indices: a gap would make a class no mask holds, which scores Dice 1 everywhere.
    if len(foreground) < MAX_INFERRED_CLASSES and foreground == list(range(1, len(foreground) + 1)):
        return ("background", *(f"class_{v}" for v in foreground)), None
    if len(ordered) <= MAX_INFERRED_CLASSES:
        logger.warning("%s: mask values %s mapped to classes 0..%d in increasing order", uri, describe_values(ordered), len(foreground))
        return ("background", *(f"class_{v}" for v in foreground)), {v: i for i, v in enumerate([0, *foreground])}
    raise DatasetError(
        f"{uri}: masks hold {len(ordered)} distinct values (instance label maps?); use ?encoding=instances for "
        "a binary foreground, or re-encode them with `usemabench datasets import relabel`"
    )


def _nnunet_classes(source: NnUNetSource) -> tuple[tuple[str, ...], None]:
    labels = source.dataset_json["labels"]
    if all(str(key).isdigit() for key in labels):  # nnU-Net v1: {"0": "background", ...}
        by_value = {int(key): str(name) for key, name in labels.items()}
    else:
        if any(not isinstance(value, int) for value in labels.values()):
            raise DatasetError(f"{source.root / 'dataset.json'}: region-based labels (lists) are not supported")
        by_value = {int(value): str(name) for name, value in labels.items()}
    if sorted(by_value) != list(range(len(by_value))):
        raise DatasetError(f"{source.root / 'dataset.json'}: label values must be consecutive from 0, got {sorted(by_value)}")
    return tuple(by_value[value] for value in range(len(by_value))), None


def infer_spec(uri: str, split_file: str | None = None) -> DatasetSpec:
    """A DatasetSpec for the data behind `uri`; its split file defaults to `<cache>/splits/<name>-<hash>.json`."""
    parsed = SourceURI.parse(uri)
    if ":" not in uri:
        uri = f"{parsed.scheme}:{Path(parsed.target).resolve()}"
    options = parsed.options
    source = open_source(uri)
    if not source.case_ids():
        raise DatasetError(f"{uri}: no cases found")
    encoding = options.get("encoding", "index")
    if isinstance(source, NnUNetSource):
        class_names, label_map = _nnunet_classes(source)
        channels = source.num_channels
        channel_names = list((source.dataset_json.get("channel_names") or source.dataset_json["modality"]).values())
        normalization = NNUNET_NORMALIZATION.get(str(channel_names[0]), "zscore")
    else:
        values, channels = _scan(source, encoding == "threshold")
        if encoding == "index":
            class_names, label_map = _classes_from_values(values, uri)
        else:
            class_names, label_map = ("background", "foreground"), None
        normalization = "zscore"
    if "classes" in options:
        class_names = tuple(name.strip() for name in options["classes"].split(",") if name.strip())
    name = options.get("name") or slug(Path(parsed.target.rstrip("/")).name or parsed.target)
    return DatasetSpec(
        name=name,
        modality=options.get("modality", "unspecified"),
        task="binary" if len(class_names) == 2 else "multiclass",
        class_names=class_names,
        in_channels=int(options.get("channels", channels)),
        source=uri,
        split_file=split_file or options.get("split_file") or str(cache_dir() / "splits" / f"{slug(name)}-{content_hash(uri, 8)}.json"),
        license=options.get("license", "unknown"),
        normalization=options.get("normalization", normalization),
        mask_encoding=encoding,
        label_map=label_map,
        mask_threshold=int(options.get("threshold", 127)),
        eval_policy=options.get("eval_policy", "resize"),
        description=f"ad-hoc dataset read from {uri}",
    )
