"""Pretrained weights the package knows of, named as timm names them: `arch.tag`, one `PretrainedCfg` per tag.

`manifest.json` beside this file lists every entry. A packaged entry names a `.safetensors` file shipped in
this folder (small CPU weights: `pretrained=True` works offline); a Hub entry names a repo and the revision
it was published at (larger weights, kept out of git). Every entry carries the weights' sha256, checked on
load, and what the weights expect (channels, classes, normalisation, resolution) and prove (the training
record's hash, the test Dice). This module only reads the manifest; `usemabench.hub` loads and publishes.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
MANIFEST_SCHEMA_VERSION = 1
DTYPES = ("float32", "float16")


class ManifestError(ValueError):
    """A manifest that cannot be read, an entry with a wrong field, or a name it does not list."""


@dataclass(frozen=True)
class PretrainedCfg:
    """One set of published weights: where they are, what they expect, and what they were shown to do.

    `file` (packaged, beside the manifest) or `hub_id` (a Hub repo in the usemabench weights layout) says
    where; `revision` pins the Hub commit (None until `usemabench publish` has pushed the entry).
    `preprocessing` is what `predict` and evaluation must do to an image first (normalization, resolution,
    eval_policy, dataset), as training did.
    """

    architecture: str
    tag: str
    sha256: str
    in_channels: int
    num_classes: int
    class_names: list[str]
    preprocessing: dict[str, Any]
    file: str | None = None
    hub_id: str | None = None
    revision: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    license: str = "unknown"
    dataset: str = ""
    protocol: str = ""
    train_record: str = ""
    train_record_sha256: str = ""
    # what a user's run must match to be compared with these weights' results: the training record's hashes
    protocol_hash: str = ""
    config_hash: str = ""
    split_hash: str = ""
    data_hash: str = ""
    test_dice: float | None = None
    default: bool = False

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}"

    @property
    def resolution(self) -> list[int] | None:
        return self.preprocessing.get("resolution")

    @property
    def normalization(self) -> str | dict | None:
        return self.preprocessing.get("normalization")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "architecture": (str,), "tag": (str,), "sha256": (str,), "in_channels": (int,), "num_classes": (int,),
    "class_names": (list,), "preprocessing": (dict,), "file": (str, type(None)), "hub_id": (str, type(None)),
    "revision": (str, type(None)), "overrides": (dict,), "dtype": (str,), "license": (str,), "dataset": (str,),
    "protocol": (str,), "train_record": (str,), "train_record_sha256": (str,), "protocol_hash": (str,),
    "config_hash": (str,), "split_hash": (str,), "data_hash": (str,), "test_dice": (float, int, type(None)),
    "default": (bool,),
}


def split_model_name(name: str) -> tuple[str, str | None]:
    """`usema_tiny.kvasir_seg_cpu` -> (`usema_tiny`, `kvasir_seg_cpu`); a name without a tag -> (name, None)."""
    architecture, _, tag = name.partition(".")
    return architecture, tag or None


def parse_entry(name: str, entry: Any, source: Path) -> PretrainedCfg:
    """One manifest entry as a PretrainedCfg; a ManifestError naming the file, the entry and the field otherwise."""
    where = f"{source}: entry {name!r}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} is not an object")
    known = {item.name for item in fields(PretrainedCfg)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for key, allowed in _FIELD_TYPES.items():
        if key in entry and (not isinstance(entry[key], allowed) or (bool not in allowed and isinstance(entry[key], bool))):
            raise ManifestError(f"{where}: {key} must be {' or '.join(kind.__name__ for kind in allowed)}, got {entry[key]!r}")
    try:
        cfg = PretrainedCfg(**entry)
    except TypeError as error:  # a required field is missing
        raise ManifestError(f"{where}: {error}") from None
    if name != cfg.name:
        raise ManifestError(f"{where} describes {cfg.name!r}: the key must be architecture.tag")
    if (cfg.file is None) == (cfg.hub_id is None):
        raise ManifestError(f"{where}: give exactly one of file (packaged) and hub_id (published on the Hub)")
    if cfg.file is not None and (Path(cfg.file).name != cfg.file or not cfg.file.endswith(".safetensors")):
        raise ManifestError(f"{where}: file {cfg.file!r} must be a .safetensors file name beside the manifest")
    if cfg.dtype not in DTYPES:
        raise ManifestError(f"{where}: dtype {cfg.dtype!r} is not one of {DTYPES}")
    if len(cfg.sha256) != 64:
        raise ManifestError(f"{where}: sha256 {cfg.sha256!r} is not a 64-character hex digest")
    if cfg.test_dice is not None and not (math.isfinite(cfg.test_dice) and 0 <= cfg.test_dice <= 1):
        raise ManifestError(f"{where}: test_dice {cfg.test_dice!r} is not in [0, 1]")
    return cfg


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, PretrainedCfg]:
    """Every entry of the manifest at `path` (the package's by default), by `arch.tag` name."""
    path = Path(path) if path is not None else MANIFEST_PATH
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such pretrained manifest") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: not a readable JSON manifest ({error})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("weights"), dict):
        raise ManifestError(f"{path}: a manifest is an object with a 'weights' object")
    if payload.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema_version {payload.get('schema_version')!r}, expected {MANIFEST_SCHEMA_VERSION}")
    entries = {name: parse_entry(name, entry, path) for name, entry in payload["weights"].items()}
    defaults: dict[str, list[str]] = {}
    for cfg in entries.values():
        if cfg.default:
            defaults.setdefault(cfg.architecture, []).append(cfg.tag)
    doubled = {arch: tags for arch, tags in defaults.items() if len(tags) > 1}
    if doubled:
        raise ManifestError(f"{path}: several default tags for one architecture: {doubled}")
    return entries


def manifest_payload(entries: Mapping[str, PretrainedCfg]) -> dict[str, Any]:
    """The JSON form of `entries`, sorted by name, as `load_manifest` reads it back."""
    return {"schema_version": MANIFEST_SCHEMA_VERSION, "weights": {name: entries[name].to_dict() for name in sorted(entries)}}


def list_pretrained(pattern: str | None = None, manifest: str | os.PathLike | None = None) -> list[str]:
    """`arch.tag` names of every pretrained entry, sorted, optionally filtered by a shell-style pattern (as timm)."""
    names = sorted(load_manifest(manifest))
    return fnmatch.filter(names, pattern) if pattern is not None else names


def default_tag(architecture: str, manifest: str | os.PathLike | None = None) -> str | None:
    """The tag `create_model(architecture, pretrained=True)` loads: the entry marked default, else the only one."""
    tags = [cfg for cfg in load_manifest(manifest).values() if cfg.architecture == architecture]
    marked = [cfg.tag for cfg in tags if cfg.default]
    if marked:
        return marked[0]
    return tags[0].tag if len(tags) == 1 else None


def get_pretrained_cfg(name: str, manifest: str | os.PathLike | None = None) -> PretrainedCfg:
    """The PretrainedCfg of `arch.tag`, or of `arch`'s default tag; a ManifestError listing what exists otherwise."""
    entries = load_manifest(manifest)
    architecture, tag = split_model_name(name)
    if tag is None:
        tag = default_tag(architecture, manifest)
        if tag is None:
            tags = sorted(cfg.name for cfg in entries.values() if cfg.architecture == architecture)
            hint = f"choose one of {', '.join(tags)}" if tags else "see `usemabench weights` for the weights that exist"
            raise ManifestError(f"model {architecture!r} has no default pretrained weights; {hint}")
    full_name = f"{architecture}.{tag}"
    if full_name not in entries:
        known = sorted(entries)
        hint = f"known: {', '.join(known)}" if known else "the manifest lists none yet"
        raise ManifestError(f"no pretrained weights named {full_name!r} ({hint})")
    return entries[full_name]


def packaged_file(cfg: PretrainedCfg, manifest: str | os.PathLike | None = None) -> Path:
    """Where a packaged entry's safetensors file lies: beside its manifest."""
    if cfg.file is None:
        raise ManifestError(f"{cfg.name} is published on the Hub ({cfg.hub_id}), not packaged")
    return (Path(manifest) if manifest is not None else MANIFEST_PATH).parent / cfg.file
