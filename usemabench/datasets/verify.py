"""Verification of every pair of a dataset before use, and the summary `usemabench datasets verify` prints."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from usemabench.datasets.cases import load_case
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.regions import IGNORE_INDEX
from usemabench.datasets.sources import Source
from usemabench.datasets.spec import DatasetSpec


@dataclass
class VerifyReport:
    """What a full pass over the pairs found: problems (one line each) and what the data looks like."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    class_pixels: np.ndarray | None = None
    ignored_pixels: int = 0  # outside a field of view / inside an ignore mask / of the ignore value

    def raise_if_problems(self, context: str, hint: str = "") -> None:
        if not self.problems:
            return
        if len(self.problems) == 1:
            raise DatasetError(self.problems[0])
        raise DatasetError(f"{len(self.problems)} problems in {context}; first: {self.problems[0]}{hint}")

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
        return lines


def verify_cases(spec: DatasetSpec, source: Source, case_ids: Sequence[str]) -> VerifyReport:
    """Read and check every listed pair (threads for file sources: decoders release the GIL), plus the
    problems of the source as a whole (masks without images, two files for one case)."""
    report = VerifyReport(problems=source.problems())
    report.class_pixels = np.zeros(spec.num_classes, dtype=np.int64)

    def check(case_id: str) -> tuple[str, tuple[int, int] | None, np.ndarray | None, int]:
        try:
            _, mask = load_case(spec, source, case_id)
        except DatasetError as error:
            return str(error), None, None, 0
        scored = mask[mask != IGNORE_INDEX]
        return "", mask.shape, np.bincount(scored, minlength=spec.num_classes), mask.size - scored.size

    workers = min(8, os.cpu_count() or 1) if source.parallel_safe else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for problem, size, counts, ignored in pool.map(check, case_ids):
            report.checked += 1
            if problem:
                report.problems.append(problem)
            else:
                report.sizes[size] += 1
                report.ignored_pixels += ignored
                report.class_pixels += counts
    return report
