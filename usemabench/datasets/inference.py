"""Ad-hoc DatasetSpecs read from the data behind a source URI (`folder:`, `nnunet:`, `hf:` or a folder path).

Classes come from nnU-Net's dataset.json, or are inferred from the mask values (`mask_inference.py`:
binary, anti-aliased, instance ids, class indices or colours), and what was inferred is said with its
evidence. URI options (`source_options.py`) override what is inferred, e.g.

    ?name=NAME&classes=background,polyp&encoding=index|threshold|instances&threshold=127
     &channels=3&normalization=zscore|minmax|none&eval_policy=resize|sliding_window&modality=TEXT
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.labels import plain_values, stray_values
from usemabench.datasets.locations import cache_dir, slug
from usemabench.datasets.mask_inference import InferredMasks, MaskValues, classes_from_values, infer_masks
from usemabench.datasets.sources import NnUNetSource, Source, SourceURI, open_source
from usemabench.datasets.spec import DatasetSpec
from usemabench.datasets.given_splits import imported_split_path
from usemabench.core.hashing import content_hash

logger = logging.getLogger(__name__)
NNUNET_NORMALIZATION = {"rgb_to_0_1": "none", "noNorm": "none", "zscore": "zscore"}
_ANNOUNCED: set[str] = set()  # URIs whose inferred encoding was already said in this process


def _scan(source: Source, first_channel: bool, ignore_value: int | None = None) -> tuple[MaskValues, int]:
    """(the mask values and where they lie, the largest image channel count) over the readable pairs.

    Unreadable pairs are skipped here (verification reports each of them); none readable is an error
    that names every file.
    """

    def read(case_id: str) -> tuple[np.ndarray, int] | DatasetError:
        try:
            pair = source.read_pair(case_id, first_channel)
        except DatasetError as error:
            return error
        # pixels of the ignore value (?ignore_index=) count as background here: they never name a class
        mask = pair.mask if ignore_value is None else np.where(pair.mask == ignore_value, 0, pair.mask)
        return mask, pair.image.shape[2]

    stats = MaskValues()
    channels = 0
    errors = []
    workers = min(8, os.cpu_count() or 1) if source.parallel_safe else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(read, source.case_ids()):
            if isinstance(result, DatasetError):
                errors.append(str(result))
                continue
            stats.add(result[0])
            channels = max(channels, result[1])
    if not channels:
        raise DatasetError(f"{source.uri}: no pair is readable ({len(errors)} cases):\n  " + "\n  ".join(errors))
    return stats, channels


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


def _masks(
    source: Source, encoding: str | None, where: str, ignore_value: int | None, declared: tuple[str, ...] | None
) -> tuple[InferredMasks, int]:
    """The mask encoding (given, else inferred and said once per process) and the image channel count.

    Declared classes (`?classes=`), one per mask value, take the values in increasing order. Otherwise stray
    values (`labels.stray_values`) are left out of the inference, so that reading a mask holding one fails
    naming the file and the value instead of making it a class or background.
    """
    stats, channels = _scan(source, encoding == "threshold", ignore_value)
    if encoding is None and declared is not None and len(declared) == len(stats.pixels) and not plain_values(list(stats.pixels)):
        inferred = classes_from_values(sorted(stats.pixels), where)
        return replace(inferred, reason=f"{inferred.reason}, one declared class per value"), channels
    if encoding is None:
        stray = stray_values(stats.holding, stats.masks)
        inferred = infer_masks(stats.without(stray), where, classes_named=declared is not None)
        if stray:
            held = ", ".join(f"{value} ({stats.holding[value]} of {stats.masks} masks)" for value in stray)
            inferred = replace(inferred, reason=(
                f"{inferred.reason}; stray value(s) {held} left out: a mask holding one is refused by name "
                "(if they are classes, declare every class with ?classes=background,...)"
            ))
        if where not in _ANNOUNCED:
            _ANNOUNCED.add(where)
            logger.warning("%s: masks read as %s: %s", where, inferred.encoding, inferred.reason)
        return inferred, channels
    if encoding == "index":
        return classes_from_values(sorted(stats.pixels), where), channels
    return InferredMasks(encoding, ("background", "foreground"), None, 127, f"?encoding={encoding} given"), channels


def infer_spec(uri: str, split_file: str | None = None) -> DatasetSpec:
    """A DatasetSpec for the data behind `uri`; its split file defaults to `<cache>/splits/<name>-<hash>.json`,
    or to the import of a given split (`?split_file=` naming a CSV or plain JSON, else a split file in the folder)."""
    parsed = SourceURI.parse(uri)
    if ":" not in uri:
        uri = f"{parsed.scheme}:{Path(parsed.target).resolve()}"
    options = parsed.options
    ignore_value = int(options["ignore_index"]) if "ignore_index" in options else None
    declared = tuple(name.strip() for name in options["classes"].split(",") if name.strip()) if "classes" in options else None
    source = open_source(uri)
    if not source.case_ids():
        raise DatasetError(f"{uri}: no cases found")
    if isinstance(source, NnUNetSource):
        class_names, label_map = _nnunet_classes(source)
        masks = InferredMasks(options.get("encoding", "index"), class_names, label_map, 127, "labels of dataset.json")
        channels = source.num_channels
        channel_names = list((source.dataset_json.get("channel_names") or source.dataset_json["modality"]).values())
        normalization = NNUNET_NORMALIZATION.get(str(channel_names[0]), "zscore")
    else:
        masks, channels = _masks(source, options.get("encoding"), uri, ignore_value, declared)
        normalization = "zscore"
    class_names = masks.class_names if declared is None else declared
    name = options.get("name") or slug(Path(parsed.target.rstrip("/")).name or parsed.target)
    default_split = str(cache_dir() / "splits" / f"{slug(name)}-{content_hash(uri, 8)}.json")
    given = options.get("split_file") or source.shipped_split_file()
    return DatasetSpec(
        name=name,
        modality=options.get("modality", "unspecified"),
        task="binary" if len(class_names) == 2 else "multiclass",
        class_names=class_names,
        in_channels=int(options.get("channels", channels)),
        source=uri,
        split_file=split_file or (imported_split_path(given, name, uri) if given else default_split),
        license=options.get("license", "unknown"),
        normalization=options.get("normalization", normalization),
        mask_encoding=masks.encoding,
        label_map=masks.label_map,
        mask_threshold=int(options.get("threshold", masks.threshold)),
        eval_policy=options.get("eval_policy", "letterbox"),  # keeps the aspect ratio (registered sets choose their own)
        ignore_index=ignore_value,
        description=f"ad-hoc dataset read from {uri}; masks: {masks.reason}",
    )
