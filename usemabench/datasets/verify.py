"""Verification of every pair of a dataset before use, and the summary `usemabench datasets verify` prints.

With a resolution, verification also measures the resize ceiling: the mean Dice of the masks sent through the
geometry of training and back (a perfect model's best score: the mask as the training target at resolution R,
its one-hot resized back to native size the way evaluation resizes logits). Below CEILING_WARNING the
resolution, not the model, caps the score.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from usemabench.datasets.cases import load_case
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.evaluation import restore_letterbox, restore_prediction
from usemabench.datasets.regions import IGNORE_INDEX
from usemabench.datasets.sources import Source
from usemabench.datasets.spec import DatasetSpec
from usemabench.datasets.transforms import resolution_size, training_transform

CEILING_WARNING = 0.9


@dataclass
class VerifyReport:
    """What a full pass over the pairs found: problems (one line each) and what the data looks like."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    class_pixels: np.ndarray | None = None
    ignored_pixels: int = 0  # outside a field of view / inside an ignore mask / of the ignore value
    ceiling_resolution: tuple[int, int] | None = None
    ceiling_dice: list[float] = field(default_factory=list)  # per readable case, at ceiling_resolution

    def raise_if_problems(self, context: str, hint: str = "") -> None:
        """One DatasetError naming every problem (every bad file, one per line), not only the first."""
        if not self.problems:
            return
        if len(self.problems) == 1:
            raise DatasetError(self.problems[0])
        listed = "".join(f"\n  {problem}" for problem in self.problems)
        raise DatasetError(f"{len(self.problems)} problems in {context}{hint}:{listed}")

    def summary_lines(self, spec: DatasetSpec) -> list[str]:
        lines = [f"pairs checked: {self.checked}, problems: {len(self.problems)}"]
        if self.sizes:
            common = ", ".join(f"{w}x{h} ({n})" for (h, w), n in self.sizes.most_common(5))
            more = f", ... {len(self.sizes)} sizes" if len(self.sizes) > 5 else ""
            lines.append(f"image sizes (WxH): {common}{more}")
        if self.class_pixels is not None and self.class_pixels.sum():
            fractions = self.class_pixels / self.class_pixels.sum()
            lines.append("class pixels: " + ", ".join(f"{name} {100 * f:.1f}%" for name, f in zip(spec.class_names, fractions)))
        if self.ignored_pixels:
            total = self.ignored_pixels + int(self.class_pixels.sum()) if self.class_pixels is not None else self.ignored_pixels
            lines.append(f"ignored pixels (left out of loss and metrics): {100 * self.ignored_pixels / total:.1f}%")
        if self.ceiling_resolution is not None:
            lines.append(self.ceiling_line(spec))
        return lines

    def ceiling_line(self, spec: DatasetSpec) -> str:
        height, width = self.ceiling_resolution or (0, 0)
        if spec.eval_policy == "sliding_window":
            return f"resize ceiling at {width}x{height}: none (sliding_window trains and evaluates at native scale)"
        if not self.ceiling_dice:
            return f"resize ceiling at {width}x{height}: no readable case"
        mean, low = float(np.mean(self.ceiling_dice)), float(np.min(self.ceiling_dice))
        line = (
            f"resize ceiling at {width}x{height} ({spec.eval_policy}): mean Dice {mean:.3f} of the masks through "
            f"the resize round trip (lowest case {low:.3f})"
        )
        if mean < CEILING_WARNING:
            line += f"; WARNING: below {CEILING_WARNING}, the resolution caps every model's Dice here (train at a larger one)"
        return line


def resize_ceiling_dice(spec: DatasetSpec, mask: np.ndarray, resolution: tuple[int, int]) -> float:
    """Mean foreground Dice (both empty: 1) of a perfect prediction at `resolution`, restored to native size.

    The training geometry without augmentation turns the mask into the target at `resolution`; its one-hot,
    as logits, goes back the way evaluation restores logits. Ignored pixels are not scored.
    """
    labels = torch.from_numpy(mask)
    target = training_transform(spec, resolution, "none")(tv_tensors.Mask(labels)).as_subclass(torch.Tensor)
    logits = F.one_hot(target.clamp_min(0), spec.num_classes).permute(2, 0, 1)[None].float()
    restore = restore_letterbox if spec.eval_policy == "letterbox" else restore_prediction
    prediction = restore(logits, tuple(labels.shape))[0].max(0).indices  # = argmax(0), first on ties; ~10x faster on CPU
    scored = labels != IGNORE_INDEX
    scores = []
    for class_index in range(1, spec.num_classes):
        predicted, reference = (prediction == class_index) & scored, labels == class_index
        total = int(predicted.sum() + reference.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((predicted & reference).sum()) / total)
    return sum(scores) / len(scores)


def verify_cases(
    spec: DatasetSpec, source: Source, case_ids: Sequence[str], ceiling_resolution: int | tuple[int, int] | None = None
) -> VerifyReport:
    """Read and check every listed pair (threads for file sources: decoders release the GIL), plus the
    problems of the source as a whole (masks without images, two files for one case); with
    `ceiling_resolution`, the resize ceiling of each readable case too."""
    report = VerifyReport(problems=source.problems())
    report.class_pixels = np.zeros(spec.num_classes, dtype=np.int64)
    measure = ceiling_resolution is not None and spec.eval_policy != "sliding_window"
    if ceiling_resolution is not None:
        report.ceiling_resolution = resolution_size(ceiling_resolution)

    def check(case_id: str) -> tuple[str, tuple[int, int] | None, np.ndarray | None, int, float | None]:
        try:
            _, mask = load_case(spec, source, case_id)
        except DatasetError as error:
            return str(error), None, None, 0, None
        scored = mask[mask != IGNORE_INDEX]
        ceiling = resize_ceiling_dice(spec, mask, report.ceiling_resolution) if measure else None
        return "", mask.shape, np.bincount(scored, minlength=spec.num_classes), mask.size - scored.size, ceiling

    workers = min(8, os.cpu_count() or 1) if source.parallel_safe else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for problem, size, counts, ignored, ceiling in pool.map(check, case_ids):
            report.checked += 1
            if problem:
                report.problems.append(problem)
            else:
                report.sizes[size] += 1
                report.ignored_pixels += ignored
                report.class_pixels += counts
                if ceiling is not None:
                    report.ceiling_dice.append(ceiling)
    return report
