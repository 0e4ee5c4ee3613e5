"""Splits that come with a dataset: a CSV or JSON of case ids per part, imported into a usemabench split file.

    CSV   a header row with an id column (case_id, case, id, image, image_id, filename, file_name, name) and
          a part column (split, part, set, subset, partition, fold); numeric parts are k-fold assignments
    JSON  {"train": [ids], "val": [...], "test": [...]} (also under "splits"), or a list of
          {"train": [...], "val": [...]} folds (nnU-Net's splits_final.json)

Ids may be case ids or file names (`img_001.png`, `images/img_001.png`). Part names training/validation/
testing are read as train/val/test; other names (testA, testB) are kept. A case of the data that the file
does not list is excluded (and counted), never put in a part silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from usemabench.core.hashing import content_hash
from usemabench.core.io import file_sha256
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.locations import cache_dir, slug
from usemabench.datasets.sources import NATIVE_SPLIT_NAMES

ID_COLUMNS = ("case_id", "case", "id", "image", "image_id", "filename", "file_name", "name")
PART_COLUMNS = ("split", "part", "set", "subset", "partition", "fold")


def is_given_split(path: Path) -> bool:
    """Whether `path` is an existing split in a foreign format (not a usemabench split file)."""
    if not path.is_file():
        return False
    if path.suffix.lower() != ".json":
        return True
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # read_split_file then reports what is wrong with it
    return not (isinstance(payload, dict) and str(payload.get("format", "")).startswith("usemabench-split/"))


def imported_split_path(given: str, name: str, uri: str) -> str:
    """Where the split of `?split_file=given` lives: `given` itself when it is (or will be) a usemabench split
    file, else a file in the cache named by the URI and the given file's content (an edit makes a new split)."""
    path = Path(given).expanduser().resolve()
    if not path.exists() and path.suffix.lower() != ".json":  # only a usemabench split (.json) is written where named
        raise DatasetError(f"{path}: split file not found (a given split must exist; a new usemabench split file ends in .json)")
    if not is_given_split(path):
        return str(path)
    return str(cache_dir() / "splits" / f"{slug(name)}-given-{file_sha256(path)[:8]}-{content_hash(uri, 8)}.json")


def _part_name(text: str) -> str:
    return NATIVE_SPLIT_NAMES.get(text.strip().lower(), text.strip())


def _pick_column(header: list[str], candidates: tuple[str, ...], what: str, path: Path) -> int:
    lowered = [column.strip().lower() for column in header]
    for name in candidates:
        if name in lowered:
            return lowered.index(name)
    raise DatasetError(f"{path}: no {what} column in the header ({', '.join(header)}); name one of {', '.join(candidates)}")


def _read_csv(path: Path) -> dict[str, list[str]]:
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: unreadable split CSV ({error})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise DatasetError(f"{path}: a split CSV needs a header row and one row per case")
    id_column = _pick_column(rows[0], ID_COLUMNS, "case id", path)
    part_column = _pick_column(rows[0], PART_COLUMNS, "split", path)
    parts: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= max(id_column, part_column) or not row[id_column].strip() or not row[part_column].strip():
            raise DatasetError(f"{path}: line {line} lacks a case id or a split")
        parts.setdefault(_part_name(row[part_column]), []).append(row[id_column].strip())
    if all(part.isdigit() for part in parts):  # fold numbers: fold k holds out the cases marked k
        return _folds([(sorted(set().union(*(parts[o] for o in parts if o != k))), parts[k]) for k in sorted(parts, key=int)])
    return parts


def _folds(folds: Iterable[tuple[list[str], list[str]]]) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = {}
    for index, (train, val) in enumerate(folds):
        splits[f"fold{index}_train"], splits[f"fold{index}_val"] = list(train), list(val)
    return splits


def _read_json(path: Path) -> dict[str, list[str]]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable split JSON ({error})") from None
    if isinstance(payload, dict) and isinstance(payload.get("splits"), dict):
        payload = payload["splits"]
    if isinstance(payload, list) and all(isinstance(fold, dict) and {"train", "val"} <= set(fold) for fold in payload):
        payload = _folds((fold["train"], fold["val"]) for fold in payload)
    elif isinstance(payload, dict):
        payload = {_part_name(name): ids for name, ids in payload.items()}
    if not isinstance(payload, dict) or not payload or not all(isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in payload.values()):
        raise DatasetError(f"{path}: a split JSON maps part names to lists of case ids, or lists folds of train/val ids")
    return payload


def read_given_split(path: str | Path, case_ids: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """({part: case ids} of the given file, the data's cases it does not list) with ids matched to `case_ids`."""
    path = Path(path)
    parts = _read_csv(path) if path.suffix.lower() != ".json" else _read_json(path)
    known = set(case_ids)
    unknown: list[str] = []

    def case_of(given: str) -> str | None:
        for candidate in (given, Path(given).name, Path(given).stem):
            if candidate in known:
                return candidate
        unknown.append(given)
        return None

    resolved = {part: [case for case in map(case_of, ids) if case is not None] for part, ids in parts.items()}
    if unknown:
        raise DatasetError(f"{path}: {len(unknown)} listed case(s) are not in the data (e.g. {', '.join(unknown[:3])})")
    for part, cases in resolved.items():
        if len(set(cases)) != len(cases):
            twice = sorted({case for case in cases if cases.count(case) > 1})
            raise DatasetError(f"{path}: part '{part}' lists case(s) twice ({', '.join(twice[:3])})")
    if not all(part.startswith("fold") for part in resolved):  # folds overlap by design; train/val/test never
        owners: dict[str, str] = {}
        for part, cases in resolved.items():
            for case in cases:
                if owners.setdefault(case, part) != part:
                    raise DatasetError(f"{path}: case '{case}' is listed in both '{owners[case]}' and '{part}'")
    listed = {case for cases in resolved.values() for case in cases}
    return resolved, sorted(known - listed)
