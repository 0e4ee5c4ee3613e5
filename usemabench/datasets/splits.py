"""Fixed splits: JSON files listing the case ids of each split, checked against the data on every load.

A split file holds `splits` ({name: [case ids]}), optional `excluded` ids, and `data_hash`: the hash of
every case id the data had when the file was written. Loading checks twice: the lists still hash to
`data_hash` (the file was not edited by hand), and the data still has exactly those cases (it was not
changed, re-imported or partly copied). Either failure stops with a message; a split is never
regenerated silently. A case shared by test and another split, or by a train and its val, stops it
too, unless the file's method kind is "manual" (the one-image smoke set is every split on purpose).
`split_hash` (the hash of the lists) goes into every record.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.given_splits import is_given_split, read_given_split
from usemabench.datasets.groups import grouping_hint, groups_from_csv, groups_from_regex
from usemabench.datasets.sources import Source, SourceURI, open_source
from usemabench.datasets.spec import PACKAGED_SPLITS, DatasetSpec
from usemabench.datasets.verify import verify_cases
from usemabench.core.io import atomic_write_json, file_sha256
from usemabench.core.hashing import content_hash

SPLIT_FORMAT = "usemabench-split/1"
logger = logging.getLogger(__name__)


def data_hash(case_ids: Iterable[str]) -> str:
    return content_hash(sorted(set(case_ids)))


@dataclass(frozen=True)
class SplitFile:
    path: Path
    dataset: str
    splits: dict[str, list[str]]
    data_hash: str
    method: dict[str, Any] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()

    @property
    def split_hash(self) -> str:
        return content_hash(self.splits)

    @property
    def split_names(self) -> list[str]:
        """train, val, test first, then any others (folds) in natural order."""
        preferred = [name for name in ("train", "val", "test") if name in self.splits]
        return preferred + sorted((name for name in self.splits if name not in preferred), key=natural_key)

    @property
    def all_cases(self) -> set[str]:
        return {case for cases in self.splits.values() for case in cases} | set(self.excluded)

    @property
    def display_path(self) -> str:
        """The package-relative path of a committed split, else the absolute path."""
        try:
            return str(Path("usemabench/datasets/splits") / self.path.relative_to(PACKAGED_SPLITS))
        except ValueError:
            return str(self.path)

    def cases(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DatasetError(f"{self.path}: no split '{split}'; splits are {', '.join(self.splits)}")
        if not self.splits[split]:
            raise DatasetError(f"{self.path}: split '{split}' is empty")
        return list(self.splits[split])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "dataset": self.dataset,
            "method": self.method,
            "data_hash": self.data_hash,
            "num_cases": len(self.all_cases),
            "excluded": list(self.excluded),
            "splits": self.splits,
        }


def read_split_file(path: str | Path) -> SplitFile:
    """Load and validate a split file (format, types, integrity of the lists against `data_hash`)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable split file ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != SPLIT_FORMAT:
        raise DatasetError(f"{path}: not a split file of format {SPLIT_FORMAT}")
    splits = payload.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(c, list) and all(isinstance(i, str) for i in c) for c in splits.values()):
        raise DatasetError(f"{path}: 'splits' must map split names to lists of case ids")
    for name, cases in splits.items():
        if len(set(cases)) != len(cases):
            raise DatasetError(f"{path}: split '{name}' lists a case id twice")
    split_file = SplitFile(
        path=path,
        dataset=str(payload.get("dataset", "")),
        splits=splits,
        data_hash=str(payload.get("data_hash", "")),
        method=payload.get("method", {}),
        excluded=tuple(payload.get("excluded", ())),
    )
    if split_file.method.get("kind") != "manual":  # a manual split (the one-image smoke set) may overlap on purpose
        _check_disjoint(path, splits)
    if data_hash(split_file.all_cases) != split_file.data_hash:
        raise DatasetError(f"{path}: the case lists no longer match the file's data_hash (edited by hand?); write a new split file instead")
    return split_file


def _must_be_disjoint(a: str, b: str) -> bool:
    """test shares no case with any split, and train none with its val (`foldK_train` with `foldK_val`).

    Folds' training sets overlap each other by design, so only these pairs are checked.
    """
    if "test" in (a, b):
        return True
    return any(x.endswith("train") and y == x[: -len("train")] + "val" for x, y in ((a, b), (b, a)))


def _check_disjoint(path: Path, splits: Mapping[str, list[str]]) -> None:
    """Stop on a hand-written split that leaks evaluation cases into training or model selection."""
    names = list(splits)
    for index, a in enumerate(names):
        for b in names[index + 1 :]:
            shared = sorted(set(splits[a]) & set(splits[b]), key=natural_key)
            if shared and _must_be_disjoint(a, b):
                raise DatasetError(
                    f"{path}: splits '{a}' and '{b}' share {len(shared)} case(s) (e.g. {', '.join(shared[:3])}); "
                    "a case may be in only one of them (method kind 'manual' marks an overlap made on purpose)"
                )


def write_split_file(path: str | Path, split_file: SplitFile, *, overwrite: bool = False) -> SplitFile:
    path = Path(path)
    if path.exists() and not overwrite:
        raise DatasetError(f"{path}: split file exists; a split is never replaced silently (delete it or pass --force)")
    atomic_write_json(path, split_file.to_json())
    return SplitFile(path, split_file.dataset, split_file.splits, split_file.data_hash, split_file.method, split_file.excluded)


def natural_key(text: str) -> list:
    """Sort key that orders '2' before '10' (slice numbers, frame indices)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _count(share: float | int, total: int, what: str) -> int:
    """A count, or a fraction of `total` rounded (but at least one case when the fraction is positive)."""
    if isinstance(share, int):
        count = share
    else:
        count = min(total, max(1, round(float(share) * total))) if share > 0 else 0
    if not 0 <= count <= total:
        raise DatasetError(f"{what} {share!r} does not fit {total} cases")
    return count


def make_splits(
    case_ids: Iterable[str],
    *,
    seed: int = 0,
    val: float | int = 0.1,
    test: float | int = 0.1,
    native: Mapping[str, str] | None = None,
    contiguous: bool = False,
    folds: int | None = None,
    groups: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Split `case_ids` into train/val/test (fractions or counts), or k folds plus test.

    Cases with a `native` split (an official test folder, Hugging Face splits) keep it; val and test are
    carved from the rest only when the native splits lack them. `contiguous` keeps the natural order
    (slices of one volume must not be mixed); otherwise the order is shuffled with `seed`. With `groups`
    ({case: group}) whole groups are shuffled and carved, so a part takes at least its share, rounded up
    to a group boundary; without them every case is its own group (the same split as before groups existed).
    """
    native = {case: split for case, split in (native or {}).items() if split != "train"}  # train cases join the pool
    pool_cases = sorted((case for case in set(case_ids) if case not in native), key=natural_key)
    units = _group_units(pool_cases, groups)
    if not contiguous:
        random.Random(seed).shuffle(units)
    fixed = {name: sorted((c for c, s in native.items() if s == name), key=natural_key) for name in ("val", "test")}
    total = len(pool_cases)  # fractions are of every case without a native split
    n_test = 0 if fixed["test"] else _count(test, total, "test share")
    test_cases, units = _take_from_end(units, n_test)
    pool = [case for unit in units for case in unit]
    if folds:
        if folds < 2 or folds > len(units):
            raise DatasetError(f"cannot make {folds} folds of {len(units)} {'groups' if groups else 'cases'}")
        splits = {}
        for fold in range(folds):
            held = [case for unit in units[fold::folds] for case in unit]
            held_set = set(held)
            splits[f"fold{fold}_train"] = sorted((c for c in pool if c not in held_set), key=natural_key)
            splits[f"fold{fold}_val"] = sorted(held, key=natural_key)
        splits["test"] = sorted(fixed["test"] + test_cases, key=natural_key)
        return splits
    n_val = 0 if fixed["val"] else min(_count(val, total, "val share"), len(pool))
    val_cases, units = _take_from_end(units, n_val)
    train_cases = [case for unit in units for case in unit]
    if not train_cases:
        raise DatasetError(
            f"val {val!r} and test {test!r} leave no training case (val {len(fixed['val']) + n_val}, "
            f"test {len(fixed['test']) + n_test}); give smaller shares"
        )
    return {
        "train": sorted(train_cases, key=natural_key),
        "val": sorted(fixed["val"] + val_cases, key=natural_key),
        "test": sorted(fixed["test"] + test_cases, key=natural_key),
    }


def _group_units(cases: list[str], groups: Mapping[str, str] | None) -> list[list[str]]:
    """The cases as units that move together: one per case, or one per group (in natural order of groups)."""
    if groups is None:
        return [[case] for case in cases]
    by_group: dict[str, list[str]] = {}
    for case in cases:
        by_group.setdefault(groups[case], []).append(case)
    return [by_group[name] for name in sorted(by_group, key=natural_key)]


def _take_from_end(units: list[list[str]], count: int) -> tuple[list[str], list[list[str]]]:
    """(the cases of the last units, at least `count` of them, whole units only; the units left)."""
    taken, index = 0, len(units)
    while taken < count and index > 0:
        index -= 1
        taken += len(units[index])
    return [case for unit in units[index:] for case in unit], units[:index]


def check_groups_whole(splits: Mapping[str, list[str]], groups: Mapping[str, str], where: str) -> None:
    """Stop when a group is in two parts that must be disjoint (test and any other, a fold's train and val)."""
    names = list(splits)
    for index, a in enumerate(names):
        for b in names[index + 1 :]:
            shared = sorted({groups[c] for c in splits[a] if c in groups} & {groups[c] for c in splits[b] if c in groups}, key=natural_key)
            if shared and _must_be_disjoint(a, b):
                raise DatasetError(
                    f"{where}: group(s) {', '.join(shared[:3])} are in both '{a}' and '{b}'; a group must stay in one part"
                )


def case_groups(spec: DatasetSpec, source: Source, case_ids: Iterable[str], group_by: str | None = None) -> tuple[dict[str, str] | None, dict[str, str]]:
    """({case: group} or None, what the split method records about it): `group_by` (or the URI's `group_by`
    option) wins over a groups.csv in the data folder."""
    pattern = group_by or SourceURI.parse(spec.source).options.get("group_by")
    if pattern:
        return groups_from_regex(case_ids, pattern), {"group_by": pattern}
    groups_file = source.groups_file()
    if groups_file is not None:
        return groups_from_csv(groups_file, case_ids), {"groups_file": groups_file.name, "groups_sha256": file_sha256(groups_file)}
    return None, {}


def given_split_path(spec: DatasetSpec, method: Mapping[str, Any], source: Source) -> Path | None:
    """The given split to import: `method["from"]` (`datasets split --from`), else a `?split_file=` in a foreign
    format, else one shipped in the data folder (`split.csv`, nnU-Net's `splits_final.json`, ...)."""
    if method.get("from"):
        return Path(method["from"]).expanduser()
    option = SourceURI.parse(spec.source).options.get("split_file")
    given = Path(option).expanduser() if option else source.shipped_split_file()
    return given if given is not None and is_given_split(given) else None


def _given_splits(path: Path, all_ids: set[str], method: dict[str, Any], groups: Mapping[str, str] | None) -> tuple[dict[str, list[str]], list[str]]:
    """Splits of a given file: folds as given; otherwise its train/val/test (and other named parts) kept, val
    carved from its train when it has none, test only when it has no part besides train and val."""
    parts, unlisted = read_given_split(path, all_ids)
    method.update({"kind": "given", "from": path.name, "sha256": file_sha256(path)})
    if unlisted:
        logger.warning("%s lists no part for %d case(s) of the data (e.g. %s); they are excluded", path, len(unlisted), ", ".join(unlisted[:3]))
    if all(re.fullmatch(r"fold\d+_(train|val)", name) for name in parts):
        return parts, unlisted
    others = {name: cases for name, cases in parts.items() if name not in ("train", "val", "test")}
    listed = [case for name, cases in parts.items() if name not in others for case in cases]
    native = {case: name for name, cases in parts.items() if name in ("val", "test") for case in cases}
    test_share = method["test"] if not (others or "test" in parts) else 0
    method["test"] = test_share
    if "val" in parts:
        method.pop("val", None)
    splits = make_splits(listed, seed=int(method["seed"]), val=method.get("val", 0), test=test_share, native=native, groups=groups)
    return {**{name: cases for name, cases in splits.items() if cases or name in parts}, **others}, unlisted


def spec_sources(spec: DatasetSpec, split_names: Iterable[str]) -> dict[str, Source]:
    """{uri: Source} of the main source and every source the named splits read from."""
    uris = [spec.source, *(spec.source_for(name) for name in split_names)]
    return {uri: open_source(uri) for uri in dict.fromkeys(uris)}


def generate_split_file(spec: DatasetSpec, *, method: Mapping[str, Any] | None = None) -> SplitFile:
    """A new split of the data behind `spec` (not written): cases of per-split sources keep their split."""
    method = {"kind": "random", "seed": 0, "val": 0.1, "test": 0.1, **(method or {})}
    sources = spec_sources(spec, spec.split_sources)
    main = sources[spec.source]
    native = main.native_splits()
    for split, uri in spec.split_sources.items():
        native.update({case: split for case in sources[uri].case_ids()})
    all_ids = _union_of_ids(sources)
    groups, group_method = case_groups(spec, main, all_ids, method.pop("group_by", None))
    method.update(group_method)
    if groups is None and (hint := grouping_hint(all_ids)):
        logger.warning("%s: %s", spec.name, hint)
    given = given_split_path(spec, method, main)
    excluded: list[str] = []
    if given is not None:
        splits, excluded = _given_splits(given, all_ids, method, groups)
    else:
        splits = make_splits(
            main.case_ids(),
            seed=int(method["seed"]),
            val=method["val"],
            test=method["test"],
            native=native,
            contiguous=method["kind"] == "contiguous",
            folds=method.get("folds"),
            groups=groups,
        )
    if groups is not None:
        check_groups_whole(splits, groups, str(given or spec.name))
    return SplitFile(spec.split_path, spec.name, splits, data_hash(all_ids), dict(method), tuple(excluded))


def _union_of_ids(sources: Mapping[str, Source]) -> set[str]:
    seen: dict[str, str] = {}
    for uri, source in sources.items():
        for case in source.case_ids():
            if case in seen and seen[case] != uri:
                raise DatasetError(f"case id '{case}' is in two sources ({seen[case]} and {uri}); case ids must be unique")
            seen[case] = uri
    return set(seen)


def check_split_matches_data(split_file: SplitFile, sources: Mapping[str, Source]) -> None:
    """Stop when the data no longer has exactly the cases the split file was made for."""
    current = _union_of_ids(sources)
    if data_hash(current) == split_file.data_hash:
        return
    expected = split_file.all_cases
    missing, extra = sorted(expected - current, key=natural_key), sorted(current - expected, key=natural_key)
    details = []
    if missing:
        details.append(f"{len(missing)} case(s) of the split file are not in the data (e.g. {', '.join(missing[:3])})")
    if extra:
        details.append(f"{len(extra)} case(s) in the data are not in the split file (e.g. {', '.join(extra[:3])})")
    raise DatasetError(
        f"{split_file.path}: stale split: the data at {', '.join(sources)} no longer matches it "
        f"(data hash {data_hash(current)}, split file made for {split_file.data_hash}): {'; '.join(details)}. "
        "Restore the data, or write a new split with `usemabench datasets split` (results are then not comparable)"
    )


def ensure_split_file(spec: DatasetSpec) -> SplitFile:
    """The spec's split file; for an ad-hoc dataset without one, a seeded split written once (and said so)."""
    path = spec.split_path
    if path.exists():
        return read_split_file(path)
    if path.is_relative_to(PACKAGED_SPLITS):
        raise DatasetError(f"{path}: the committed split file of dataset '{spec.name}' is missing from the package")
    split_file = generate_split_file(spec)
    # Verified first: a split written for data that fails would go stale once the user removes the bad pair.
    for uri, source in spec_sources(spec, split_file.splits).items():
        verify_cases(spec, source, source.case_ids()).raise_if_problems(
            f"{uri}", f" (all of them: usemabench datasets verify {spec.source}); the split file is written once the data passes"
        )
    if path.exists():  # another process (a DDP rank) wrote it meanwhile: the seeded split is the same, or refused
        written = read_split_file(path)
        if (written.splits, written.data_hash) != (split_file.splits, split_file.data_hash):
            raise DatasetError(f"{path}: another process wrote a different split of '{spec.name}' meanwhile")
        return written
    split_file = write_split_file(path, split_file)
    made = f"imported from {split_file.method['from']}" if split_file.method.get("kind") == "given" else "seeded random"
    logger.warning("wrote a new split file for '%s' (%s): %s (later runs reuse it; keep it with your results)", spec.name, made, path)
    return split_file


def split_info(spec: DatasetSpec) -> dict[str, Any]:
    """What a record needs about the split: its file, hash and case counts."""
    split_file = ensure_split_file(spec)
    return {
        "split_file": split_file.display_path,
        "split_hash": split_file.split_hash,
        "counts": {name: len(cases) for name, cases in split_file.splits.items()},
    }


def run_parts(split_file: SplitFile, fold: int | None) -> dict[str, str]:
    """The splits playing train, val and test in a run: train/val/test; with `fold` K, fold K's train and val,
    tested on `test` when the split has one, else on fold K's val (cross-validation)."""
    folds = sorted(int(match[1]) for name in split_file.splits if (match := re.fullmatch(r"fold(\d+)_train", name)))
    listed = ", ".join(map(str, folds))
    if fold is None:
        if "train" not in split_file.splits and folds:
            raise DatasetError(f"{split_file.path}: the split holds folds ({listed}) and no train part: pass --fold K, one of {listed}")
        return {"train": "train", "val": "val", "test": "test"}
    if fold not in folds:
        have = f"its folds are {listed}" if folds else "it has no folds (`usemabench datasets split SRC --folds K` makes some)"
        raise DatasetError(f"{split_file.path}: no fold {fold}; {have}")
    test = "test" if "test" in split_file.splits else f"fold{fold}_val"
    return {"train": f"fold{fold}_train", "val": f"fold{fold}_val", "test": test}


def split_entry(spec: DatasetSpec, split: str) -> dict[str, Any]:
    """The `dataset` field of a record about one split: name, source, split, its file and hash."""
    split_file = ensure_split_file(spec)
    return {
        "name": spec.name,
        "source": spec.source_for(split),
        "split": split,
        "split_file": split_file.display_path,
        "split_hash": split_file.split_hash,
    }
