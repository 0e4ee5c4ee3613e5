"""The `?key=value` options of a source URI, as data: one table drives parsing checks, `--help` and README.

Add an option by adding a `SourceOption` row (the code that reads it stays where it is used); a URI naming an
option that is not in the table is refused with the nearest names, so a typo never silently changes nothing.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.labels import MASK_ENCODINGS

FILE_SCHEMES = ("folder", "nnunet")
ALL_SCHEMES = ("folder", "nnunet", "hf")


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _whole_number(value: str) -> str | None:
    return None if value.isdigit() else "must be a whole number >= 0"


@dataclass(frozen=True)
class SourceOption:
    """One option: the schemes it applies to, what it does, and an example URI that uses it."""

    name: str
    schemes: tuple[str, ...]
    meaning: str
    example: str
    check: Callable[[str], str | None] | None = None  # returns what is wrong with a value, or None


SOURCE_OPTIONS: tuple[SourceOption, ...] = (
    SourceOption("name", ALL_SCHEMES, "dataset name in records and file names (default: the folder name)", "folder:/data/drive?name=drive"),
    SourceOption(
        "encoding", ALL_SCHEMES,
        f"how mask values become classes ({'|'.join(MASK_ENCODINGS)}); inferred from the values when not given",
        "folder:/data/nuclei?encoding=instances", _one_of(*MASK_ENCODINGS),
    ),
    SourceOption(
        "threshold", ALL_SCHEMES, "with encoding=threshold: first channel > T is foreground (default 127)",
        "folder:/data/polyps?encoding=threshold&threshold=100", _whole_number,
    ),
    SourceOption("classes", ALL_SCHEMES, "class names, background first (default: inferred)", "folder:/data/organs?classes=background,liver,kidney"),
    SourceOption("channels", ALL_SCHEMES, "image channels the model takes (gray files are repeated)", "folder:/data/xray?channels=3", _whole_number),
    SourceOption(
        "normalization", ALL_SCHEMES, "per-image intensity normalisation (zscore|minmax|none)",
        "folder:/data/xray?normalization=minmax", _one_of("zscore", "minmax", "none"),
    ),
    SourceOption(
        "eval_policy", ALL_SCHEMES,
        "training geometry and how evaluation reaches native size: letterbox (default: long side resized, aspect "
        "kept, padding ignored in the loss), resize (stretched to the square) or sliding_window (native-scale patches)",
        "folder:/data/em?eval_policy=sliding_window", _one_of("letterbox", "resize", "sliding_window"),
    ),
    SourceOption(
        "ignore_index", ALL_SCHEMES,
        "a raw mask value left out of the loss and every metric (e.g. an unlabelled band); a fov/ or ignore/ "
        "folder beside masks/ (same stems; fov: nonzero = scored, ignore: nonzero = left out) does the same per pixel",
        "folder:/data/drive?ignore_index=255", _whole_number,
    ),
    SourceOption("modality", ALL_SCHEMES, "free text recorded with the dataset", "folder:/data/us?modality=ultrasound"),
    SourceOption("license", ALL_SCHEMES, "free text recorded with the dataset", "folder:/data/us?license=CC-BY-4.0"),
    SourceOption("mask_suffix", ("folder",), "masks are named <case><suffix>.<ext>", "folder:/data/isic?mask_suffix=_segmentation"),
    SourceOption(
        "split_file", ALL_SCHEMES,
        "split to use: a usemabench split JSON (written there once if absent), or a given split to import: "
        "CSV with case_id,split columns, JSON {part: [case ids]} or nnU-Net splits_final.json "
        "(default: a split.csv, splits.csv, split.json, splits.json or splits_final.json in the folder)",
        "folder:/data/busi?split_file=/data/busi/official_split.csv",
    ),
    SourceOption(
        "group_by", ALL_SCHEMES,
        "regular expression whose first group (else the whole match) names a case's group (patient, video); "
        "a group is never split across train/val/test (a groups.csv with case_id,group columns in the folder does the same)",
        "folder:/data/endo?group_by=^(seq\\d+)_",
    ),
    SourceOption("split", ("hf",), "the Hugging Face split to read (also hf:REPO:SPLIT)", "hf:org/name?split=train"),
    SourceOption("image", ("hf",), "image column (default: image, img, pixel_values or input)", "hf:org/name?image=img"),
    SourceOption("mask", ("hf",), "mask column (default: mask, label, annotation, segmentation, ...)", "hf:org/name?mask=annotation"),
)  # fmt: skip


def check_source_options(uri: str, scheme: str, options: Mapping[str, str]) -> None:
    """Refuse options unknown to `scheme` (naming the nearest ones) and values an option cannot take."""
    known = {option.name: option for option in SOURCE_OPTIONS if scheme in option.schemes}
    for key, value in options.items():
        option = known.get(key)
        if option is None:
            close = difflib.get_close_matches(key, list(known), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise DatasetError(f"{uri}: unknown option '{key}' for {scheme}: sources{hint} Options: {', '.join(sorted(known))}")
        problem = option.check(value) if option.check else None
        if problem:
            raise DatasetError(f"{uri}: option {key}={value!r} {problem}")


def options_help() -> str:
    """One line per option with its example, for `usemabench datasets --help` (README lists the same table)."""
    width = max(len(option.name) for option in SOURCE_OPTIONS)
    indent = " " * (width + 4)
    lines = []
    for option in SOURCE_OPTIONS:
        schemes = "" if option.schemes == ALL_SCHEMES else f" [{', '.join(s + ':' for s in option.schemes)} only]"
        text = textwrap.fill(f"{option.meaning}{schemes}", 100, initial_indent=f"  {option.name:<{width}}  ", subsequent_indent=indent)
        lines.append(f"{text}\n{indent}e.g. {option.example}")
    return "\n".join(lines)
