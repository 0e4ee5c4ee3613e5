"""The data hash: one content hash of everything that defines a dataset's cases, for run identity and records.

    data hash = hash({"format", "options": how the data is decoded, "cases": {case id: {role: sha256}}})

`options` are the spec's decoding fields (task, classes, channels, mask encoding, label map, threshold,
normalisation, evaluation policy, ignore value, ...; those at their default are left out, so adding an
option that keeps the old behaviour keeps old hashes) and each source's scheme. A source URI's `?key=value`
options are not hashed as text: those that change decoding arrive as the spec fields above (whether given
or inferred), the rest name or describe the data (`name`, `modality`, `license`) or choose the split, which
`split_hash` covers. Nor is any path: the same files decoded the same way hash the same on every machine,
so a user's run can be matched to shipped reference records exactly. `cases` holds the sha256 of every file of every case in the split
file (image, mask and any per-case auxiliary file the source reads), so editing a mask in place changes
the hash. Sources that are not file-backed (Hugging Face datasets) hash the decoded arrays instead.

File hashes are cached in `<cache>/fingerprints/` by (path, size, mtime): a second run re-reads only
the files that changed, so a set of 1,000 images costs a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usemabench.core.hashing import content_hash
from usemabench.core.io import atomic_write_json, file_sha256
from usemabench.datasets.locations import cache_dir
from usemabench.datasets.sources import Source, SourceURI
from usemabench.datasets.spec import DatasetSpec
from usemabench.datasets.splits import ensure_split_file, spec_sources

FORMAT = "usemabench-data/1"
# Spec fields that describe or locate the data but do not change what a model sees or how it is scored.
_DESCRIPTIVE_FIELDS = {"name", "modality", "license", "citation", "homepage", "description", "split_file", "source", "split_sources"}


@dataclass(frozen=True)
class DataFingerprint:
    """The decoding options and per-case file hashes of a dataset; `data_hash` is their content hash."""

    options: dict[str, Any]
    cases: dict[str, dict[str, str]]

    @property
    def data_hash(self) -> str:
        return content_hash(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "options": self.options, "cases": self.cases}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> DataFingerprint:
        return cls(dict(payload.get("options", {})), {case: dict(files) for case, files in payload.get("cases", {}).items()})

    def changes_from(self, earlier: DataFingerprint, limit: int = 3) -> list[str]:
        """What differs from `earlier`, in words (options by name, cases by id), for a refusal to resume."""
        changes = [
            f"option {key}: {_shown(earlier.options, key)} -> {_shown(self.options, key)}"
            for key in sorted(set(self.options) | set(earlier.options))
            if self.options.get(key) != earlier.options.get(key)
        ]
        for what, ids in (
            ("added", sorted(set(self.cases) - set(earlier.cases))),
            ("removed", sorted(set(earlier.cases) - set(self.cases))),
            ("changed content", sorted(c for c in set(self.cases) & set(earlier.cases) if self.cases[c] != earlier.cases[c])),
        ):
            if ids:
                shown = ", ".join(_describe_case(c, earlier.cases.get(c), self.cases.get(c)) for c in ids[:limit])
                more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
                changes.append(f"{len(ids)} case(s) {what}: {shown}{more}")
        return changes


def _shown(options: Mapping[str, Any], key: str) -> str:
    return json.dumps(options[key]) if key in options else "(default)"


def _describe_case(case_id: str, before: Mapping[str, str] | None, after: Mapping[str, str] | None) -> str:
    if not before or not after:
        return case_id
    roles = sorted(role for role in set(before) | set(after) if before.get(role) != after.get(role))
    return f"{case_id} ({', '.join(roles)})"


def decoding_options(spec: DatasetSpec) -> dict[str, Any]:
    """Everything in `spec` that changes the decoded data or its scoring, JSON-ready, paths left out."""
    options = {
        field.name: _jsonable(getattr(spec, field.name))
        for field in dataclasses.fields(spec)
        if field.name not in _DESCRIPTIVE_FIELDS and not _at_default(spec, field)
    }
    options["source"] = _scheme(spec.source)
    options["split_sources"] = {split: _scheme(uri) for split, uri in sorted(spec.split_sources.items())}
    return options


def _at_default(spec: DatasetSpec, field: dataclasses.Field) -> bool:
    """Fields left at their default are left out, so a new option that keeps the old behaviour keeps old hashes."""
    if field.default is not dataclasses.MISSING:
        return getattr(spec, field.name) == field.default
    if field.default_factory is not dataclasses.MISSING:
        return getattr(spec, field.name) == field.default_factory()
    return False


def _scheme(uri: str) -> dict[str, Any]:
    # {"scheme", "options": {}}: the shape of the first data hashes (shipped records), which also hashed URI options
    return {"scheme": SourceURI.parse(uri).scheme, "options": {}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in sorted(value.items(), key=lambda pair: str(pair[0]))}
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def fingerprint(spec: DatasetSpec, cases_by_source: Mapping[str, tuple[Source, list[str]]]) -> DataFingerprint:
    """The fingerprint of `spec` over the cases each source holds (`{uri: (source, case ids)}`)."""
    cases: dict[str, dict[str, str]] = {}
    for source, case_ids in cases_by_source.values():
        hasher = _FileHasher(source)
        for case_id in case_ids:
            cases[case_id] = hasher.case_hashes(case_id)
        hasher.save()
    return DataFingerprint(decoding_options(spec), dict(sorted(cases.items())))


class _FileHasher:
    """sha256 of a source's case files through the on-disk cache keyed by (path, size, mtime)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.cache_path = cache_dir() / "fingerprints" / f"{content_hash(source.uri, 16)}.json"
        self.cache = self._load_cache()
        self.changed = False

    def _load_cache(self) -> dict[str, list]:
        try:
            payload = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no cache yet, or a damaged one: hash everything again
        return payload if isinstance(payload, dict) else {}

    def case_hashes(self, case_id: str) -> dict[str, str]:
        files = self.source.case_files(case_id)
        if files is None:
            return {"arrays": _array_hash(self.source, case_id)}
        return {role: self._file_hash(path) for role, path in sorted(files.items())}

    def _file_hash(self, path: Path) -> str:
        status = os.stat(path)
        key = str(Path(path).resolve())
        cached = self.cache.get(key)
        if isinstance(cached, list) and len(cached) == 3 and cached[:2] == [status.st_size, status.st_mtime_ns]:
            return cached[2]
        digest = file_sha256(path)
        self.cache[key] = [status.st_size, status.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.changed:
            try:
                atomic_write_json(self.cache_path, self.cache)
            except OSError:
                pass  # a read-only cache only costs time: the hashes are recomputed next run


def _array_hash(source: Source, case_id: str) -> str:
    pair = source.read_pair(case_id)
    digest = hashlib.sha256()
    for array in (pair.image, pair.mask):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def split_cases_by_source(spec: DatasetSpec) -> dict[str, tuple[Source, list[str]]]:
    """{uri: (source, sorted case ids)} of every case in `spec`'s split file, by the source that holds it."""
    split_file = ensure_split_file(spec)
    sources = spec_sources(spec, split_file.splits)
    cases: dict[str, tuple[Source, list[str]]] = {}
    for split, case_ids in split_file.splits.items():
        uri = spec.source_for(split)
        cases.setdefault(uri, (sources[uri], []))[1].extend(case_ids)
    return {uri: (source, sorted(set(ids))) for uri, (source, ids) in cases.items()}


def dataset_fingerprint(spec: DatasetSpec) -> DataFingerprint:
    """The fingerprint of every case in `spec`'s split file, each hashed from the source that holds it."""
    return fingerprint(spec, split_cases_by_source(spec))
