"""Which mask encoding a folder of masks uses, inferred from the values and where they lie, with the reason.

    0 and one other value                    binary (index with a label map: {0: 0, v: 1})
    0, a top value and values between them   anti-aliased or JPEG-compressed binary masks (threshold at half the
      that lie on region edges               top value): the in-between values sit where 0 meets the top value
    more than 32 values in solid regions     instance ids, or instance colours (instances: any value > 0)
    0..K (K < 32)                            class indices
    up to 32 other values or colours         classes, mapped in increasing order (colours named by hex)

Inferred, not read from any file: each rule names its evidence in `InferredMasks.reason`, and the options
that override it (`?encoding=...`) are named there too. Raw values come from `imaging.read_mask` (colour
masks as colour codes), so RGB(A) masks go through the same rules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import COLOUR_CODE_BASE, describe_colour
from usemabench.datasets.labels import describe_values

MAX_INFERRED_CLASSES = 32
EDGE_INTERIOR_SHARE = 0.3  # in-between values with fewer interior pixels than this lie on edges (anti-aliasing)
SOLID_INTERIOR_SHARE = 0.5  # foreground values with more interior pixels than this form solid regions (objects)


def _value_counts(values: np.ndarray) -> dict[int, int]:
    """{value: count}; a bincount for 8/16-bit masks (several times faster than np.unique's sort)."""
    if values.dtype.kind in "ub" and values.size and int(values.max()) < 1 << 16:
        counts = np.bincount(values.ravel())
        present = np.flatnonzero(counts)
        return dict(zip(present.tolist(), counts[present].tolist()))
    found, counts = np.unique(values, return_counts=True)
    return dict(zip(found.tolist(), counts.tolist()))


@dataclass
class MaskValues:
    """Pixel counts per raw mask value over a dataset, and how many of those pixels are interior
    (their 4 neighbours hold the same value): edges and solid regions tell encodings apart."""

    pixels: Counter = field(default_factory=Counter)
    interior: Counter = field(default_factory=Counter)
    holding: Counter = field(default_factory=Counter)  # value -> number of masks holding it
    masks: int = 0

    def add(self, mask: np.ndarray) -> None:
        pixels = _value_counts(mask)
        self.pixels.update(pixels)
        self.holding.update(pixels.keys())
        centre = mask[1:-1, 1:-1]
        same = (centre == mask[:-2, 1:-1]) & (centre == mask[2:, 1:-1]) & (centre == mask[1:-1, :-2]) & (centre == mask[1:-1, 2:])
        self.interior.update(_value_counts(centre[same]))
        self.masks += 1

    def without(self, values: list[int]) -> MaskValues:
        """These statistics as if `values` were in no mask (stray values, refused per file when read)."""
        def kept(counter: Counter) -> Counter:
            return Counter({value: count for value, count in counter.items() if value not in values})

        return MaskValues(kept(self.pixels), kept(self.interior), kept(self.holding), self.masks)

    def interior_share(self, values: list[int]) -> float:
        pixels = sum(self.pixels[v] for v in values)
        return sum(self.interior[v] for v in values) / pixels if pixels else 0.0


@dataclass(frozen=True)
class InferredMasks:
    encoding: str
    class_names: tuple[str, ...]
    label_map: dict[int, int] | None
    threshold: int
    reason: str  # what was inferred, from which evidence, and how to override it


def _name(value: int) -> str:
    return f"colour_{describe_colour(value)[1:]}" if value >= COLOUR_CODE_BASE else f"class_{value}"


def _binary(label_map: dict[int, int] | None, encoding: str, reason: str, threshold: int = 127) -> InferredMasks:
    return InferredMasks(encoding, ("background", "foreground"), label_map, threshold, reason)


def classes_from_values(values: list[int], where: str) -> InferredMasks:
    """Classes of `?encoding=index` masks: 0..K as indices, up to 32 other values mapped in increasing order."""
    ordered = sorted(values)
    foreground = [v for v in ordered if v != 0]
    if len(foreground) < MAX_INFERRED_CLASSES and foreground == list(range(1, len(foreground) + 1)):
        return InferredMasks(
            "index", ("background", *(f"class_{v}" for v in foreground)), None, 127,
            f"values 0..{len(foreground)}: class indices (if they are instance ids, one per object: ?encoding=instances)",
        )  # fmt: skip
    if len(ordered) <= MAX_INFERRED_CLASSES:
        # A gap kept as an index would make a class no mask holds, which scores Dice 1 everywhere: map instead.
        label_map = {v: i for i, v in enumerate([0, *foreground])}
        return InferredMasks(
            "index", ("background", *(_name(v) for v in foreground)), label_map, 127,
            f"values {describe_values(ordered)}: {len(foreground)} classes in increasing order (0 = background)",
        )  # fmt: skip
    raise DatasetError(
        f"{where}: masks hold {len(ordered)} distinct values ({describe_values(ordered)}), too many to be classes; "
        "use ?encoding=instances (any value > 0 is foreground) or ?encoding=threshold&threshold=T (value > T)"
    )


def infer_masks(stats: MaskValues, where: str, *, classes_named: bool = False) -> InferredMasks:
    """The encoding of masks with these values (see the module docstring), or a DatasetError that names the
    options that load them. Masks that are all 0 are accepted only when the classes are named."""
    ordered = sorted(stats.pixels)
    if ordered and ordered[0] < 0:
        raise DatasetError(f"{where}: masks hold negative label values ({describe_values([v for v in ordered if v < 0])})")
    foreground = [v for v in ordered if v != 0]
    if not foreground and classes_named:
        return InferredMasks("index", ("background",), None, 127, f"every mask is empty (all {stats.masks} hold only 0)")
    if not foreground:
        raise DatasetError(
            f"{where}: every mask is empty (all {stats.masks} hold only 0); if that is meant, name the classes "
            "with ?classes=background,NAME"
        )
    if len(foreground) == 1:
        value = foreground[0]
        return _binary({0: 0, value: 1}, "index", f"values 0 and {describe_values([value])} only: binary, {describe_values([value])} = foreground")
    colours = any(v >= COLOUR_CODE_BASE for v in ordered)
    top = ordered[-1]
    if not colours and top >= 64:
        between = [v for v in foreground if top / 8 < v < top * 7 / 8]
        near_top = [v for v in foreground if v >= top * 7 / 8]
        between_pixels = sum(stats.pixels[v] for v in between)
        foreground_pixels = sum(stats.pixels[v] for v in foreground)
        edge_share = stats.interior_share(between)
        if (
            sum(stats.pixels[v] for v in near_top) >= foreground_pixels / 2
            and between_pixels < foreground_pixels / 2
            and (not between or edge_share < EDGE_INTERIOR_SHARE)
        ):
            threshold = top // 2
            # offered only where it loads: ?encoding=index maps at most MAX_INFERRED_CLASSES values
            as_classes = " (if the values are classes: ?encoding=index)" if len(ordered) <= MAX_INFERRED_CLASSES else ""
            return _binary(
                None, "threshold",
                f"{len(ordered)} gray values from 0 to {top}, those in between on region edges ({edge_share:.0%} of their "
                f"pixels interior): anti-aliased or compressed binary masks, foreground = value > {threshold}{as_classes}",
                threshold,
            )  # fmt: skip
    if len(ordered) > MAX_INFERRED_CLASSES:
        solid = stats.interior_share(foreground)
        if solid >= SOLID_INTERIOR_SHARE:
            kind = "colours" if colours else "values"
            return _binary(
                None, "instances",
                f"{len(foreground)} {kind} besides 0 in solid regions ({solid:.0%} of their pixels interior): "
                "instance ids, one per object; foreground = any value > 0",
            )  # fmt: skip
    return classes_from_values(ordered, where)
